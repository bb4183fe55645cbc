"""Celery settings for the example app, read from the environment.

Both Redis connections are TLS with the server certificate verified against a CA
(never ssl_cert_reqs=none): CELERY_BROKER_URL and CELERY_RESULT_BACKEND are rediss:// URLs,
CELERY_CA_FILE the CA that signed both servers' certificates (or CELERY_BROKER_CA_FILE and
CELERY_BACKEND_CA_FILE, one each).
"""
import os
import ssl

broker_url = os.environ.get('CELERY_BROKER_URL', 'rediss://127.0.0.1:6380/0')
result_backend = os.environ.get('CELERY_RESULT_BACKEND', 'rediss://127.0.0.1:6381/0')
_ca = os.environ.get('CELERY_CA_FILE', 'certs/ca.crt')
broker_use_ssl = {'ssl_cert_reqs': ssl.CERT_REQUIRED, 'ssl_ca_certs': os.environ.get('CELERY_BROKER_CA_FILE', _ca)}
redis_backend_use_ssl = {'ssl_cert_reqs': ssl.CERT_REQUIRED, 'ssl_ca_certs': os.environ.get('CELERY_BACKEND_CA_FILE', _ca)}

# taskline reads JSON messages (protocol 2, Celery's default) and writes JSON results.
task_serializer = 'json'
result_serializer = 'json'
accept_content = ['json']
task_track_started = True
broker_connection_retry_on_startup = True
timezone = 'UTC'

# The cut-over: one line per task moves it to the queue the taskline workers consume
# (`taskline-worker start --celery-queues taskline`). Remove the line to roll back.
task_routes = {
    'tasks.add': {'queue': 'taskline'},
    'tasks.where': {'queue': 'taskline'},
    'tasks.tick': {'queue': 'taskline'},
}
# The rollback, as the tests do it: CELERY_ROLLBACK=tasks.where drops that task's line.
for _name in filter(None, os.environ.get('CELERY_ROLLBACK', '').split(',')):
    task_routes.pop(_name, None)
