"""What the Celery tests do on the Python side, as a user's code would: send with .delay() /
apply_async() and read with AsyncResult.get(). One command per run; prints one JSON line.
Usage: python3 celery_driver.py <command> [args...] (with the example app on PYTHONPATH)."""
import json
import sys
import time

from celery.result import AsyncResult

import tasks
from tasks import app


def out(value):
    print(json.dumps(value), flush=True)


def main(cmd, *argv):
    if cmd == 'add':
        res = tasks.add.delay(int(argv[0]), int(argv[1]))
        out({'id': res.id, 'result': res.get(timeout=float(argv[2]) if len(argv) > 2 else 10)})
    elif cmd == 'where':
        out({'result': tasks.where.delay().get(timeout=15)})
    elif cmd == 'fail':
        res = tasks.fail.apply_async((argv[0],), queue='taskline')
        try:
            res.get(timeout=10)
            out({'raised': None})
        except Exception as exc:  # noqa: BLE001 - the test reads what was raised
            out({'raised': type(exc).__name__, 'message': str(exc), 'state': res.state})
    elif cmd == 'countdown':
        sent = time.time()
        res = tasks.add.apply_async((1, 1), countdown=float(argv[0]))
        value = res.get(timeout=20)
        out({'result': value, 'elapsed': time.time() - sent})
    elif cmd == 'expired':
        res = tasks.add.apply_async((1, 2), expires=-5 if not argv else float(argv[0]))
        try:
            res.get(timeout=10)
            out({'state': res.state, 'raised': None})
        except Exception as exc:  # noqa: BLE001
            out({'state': res.state, 'raised': type(exc).__name__})
    elif cmd == 'expired-later':
        res = tasks.add.apply_async((1, 2), countdown=2, expires=1)
        try:
            res.get(timeout=10)
            out({'state': res.state, 'raised': None})
        except Exception as exc:  # noqa: BLE001
            out({'state': res.state, 'raised': type(exc).__name__})
    elif cmd == 'expired-in-backlog':
        # A 2-second task first (the worker runs one at a time), then one that expires in 1 s.
        app.signature('tasks.slow').apply_async(queue='taskline')
        res = tasks.add.apply_async((1, 2), expires=1)
        try:
            res.get(timeout=10)
            out({'state': res.state, 'raised': None})
        except Exception as exc:  # noqa: BLE001
            out({'state': res.state, 'raised': type(exc).__name__})
    elif cmd == 'priority':
        res = tasks.add.apply_async((5, 5), priority=int(argv[0]))
        out({'result': res.get(timeout=10)})
    elif cmd == 'ignored':
        res = tasks.add.apply_async((4, 4), ignore_result=True)
        out({'id': res.id})
    elif cmd == 'send':
        # send <task> <count> <queue>: record tasks with ids <prefix>-<n>, as fast as Celery sends.
        task, count, queue, prefix = argv[0], int(argv[1]), argv[2], argv[3]
        sig = app.signature(task)
        for n in range(count):
            sig.apply_async((f'{prefix}-{n}',), task_id=f'{prefix}-{n}', queue=queue)
        out({'sent': count})
    elif cmd == 'send-add':
        # send-add <count> <queue> <prefix>: add(n, 1) with ids <prefix>-<n>, nothing waited for.
        count, queue, prefix = int(argv[0]), argv[1], argv[2]
        for n in range(count):
            tasks.add.apply_async((n, 1), task_id=f'{prefix}-{n}', queue=queue)
        out({'sent': count})
    elif cmd == 'results':
        # results <prefix> <count>: every result readable, as the values sent.
        prefix, count = argv[0], int(argv[1])
        bad = []
        for n in range(count):
            tid = f'{prefix}-{n}'
            res = AsyncResult(tid, app=app)
            try:
                value = res.get(timeout=30)
            except Exception as exc:  # noqa: BLE001
                value = repr(exc)
            if value != tid:
                bad.append([tid, value])
        out({'checked': count, 'bad': bad[:10], 'badCount': len(bad)})
    elif cmd == 'multiply':
        out({'result': tasks.multiply.apply_async((6, 7), queue='taskline').get(timeout=20)})
    elif cmd == 'chain':
        from celery import chain
        res = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.add.s(100))()
        out({'result': res.get(timeout=15)})
    elif cmd == 'link':
        callback = tasks.add.s(1000).set(task_id=f'link-{time.time()}')
        res = tasks.add.apply_async((2, 2), link=callback)
        first = res.get(timeout=10)
        out({'first': first, 'callback': AsyncResult(callback.id, app=app).get(timeout=10)})
    elif cmd == 'chord':
        from celery import chord
        res = chord([tasks.add.s(1, 1)], tasks.add.s(1))()
        header = res.parent.results[0] if res.parent is not None and hasattr(res.parent, 'results') else res
        try:
            header.get(timeout=20)
            out({'raised': None})
        except Exception as exc:  # noqa: BLE001
            out({'raised': type(exc).__name__, 'message': str(exc)})
    elif cmd == 'send-v1':
        app.conf.task_protocol = 1
        out({'id': tasks.add.apply_async((1, 2), queue='taskline').id})
    elif cmd == 'send-pickle':
        out({'id': tasks.add.apply_async((1, 2), queue='taskline', serializer='pickle').id})
    elif cmd == 'outcome':
        res = AsyncResult(argv[0], app=app)
        try:
            out({'result': res.get(timeout=float(argv[1])), 'state': res.state})
        except Exception as exc:  # noqa: BLE001
            out({'raised': type(exc).__name__, 'message': str(exc), 'state': res.state})
    elif cmd == 'state':
        out({'state': AsyncResult(argv[0], app=app).state})
    else:
        raise SystemExit(f'unknown command {cmd}')


if __name__ == '__main__':
    main(*sys.argv[1:])
