"""A small FastAPI app that enqueues with Celery, unchanged by the move to taskline.

Optional: needs FastAPI and uvicorn (Debian: apt-get install python3-fastapi python3-uvicorn).
Run: CELERY_BROKER_URL=rediss://... CELERY_RESULT_BACKEND=rediss://... CELERY_CA_FILE=ca.crt \
     uvicorn app:api --port 8000
"""
from celery.result import AsyncResult
from fastapi import FastAPI

from tasks import add, app

api = FastAPI()


@api.post('/add')
def enqueue_add(x: int, y: int, countdown: float = 0):
    return {'id': add.apply_async((x, y), countdown=countdown or None).id}


@api.get('/result/{task_id}')
def result(task_id: str, wait: float = 0):
    res = AsyncResult(task_id, app=app)
    if wait:
        return {'state': 'SUCCESS', 'result': res.get(timeout=wait)}
    return {'state': res.state, 'result': res.result if res.successful() else None}
