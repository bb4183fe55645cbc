"""The example Celery app. Its tasks are defined here, for Celery workers; the ones routed to
taskline (celeryconfig.task_routes) have a TypeScript twin in taskline-tasks.ts that a
taskline worker runs. The Python side does not change when a task moves.
"""
import os

from celery import Celery

app = Celery('tasks')
app.config_from_object('celeryconfig')


@app.task(name='tasks.add')
def add(x, y):
    return x + y


@app.task(name='tasks.where')
def where():
    """Which side ran it: 'celery' here, 'taskline' in taskline-tasks.ts."""
    return 'celery'


@app.task(name='tasks.fail')
def fail(message):
    raise ValueError(message)


@app.task(name='tasks.multiply')
def multiply(x, y):
    """Only Python defines this one: a taskline worker hands it back to the fallback queue."""
    return x * y


@app.task(name='tasks.record')
def record(key):
    """Counts a run; taskline's twin does the same, so tests can count every run of every task."""
    import redis
    url = os.environ['CELERY_RESULT_BACKEND']
    ca = os.environ.get('CELERY_BACKEND_CA_FILE', os.environ.get('CELERY_CA_FILE'))
    client = redis.Redis.from_url(url, ssl_cert_reqs='required', ssl_ca_certs=ca)
    client.incr('example:runs:' + key)
    return key


@app.task(name='tasks.tick')
def tick():
    return 'tick'


app.conf.beat_schedule = {
    'tick-every-second': {'task': 'tasks.tick', 'schedule': float(os.environ.get('TICK_SECONDS', '1'))},
}
