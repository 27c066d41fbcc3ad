# unicorn -c examples/celery_alternative/unicorn.conf.py   (from anywhere: it finds its own directory)
#
# Two ASGI workers serve the FastAPI app; a dirty pool of four processes runs
# the tasks. Celery would need a broker, a result backend, `celery worker` and
# `celery beat` beside the web server: here it is one command.

import os

chdir = os.path.dirname(os.path.abspath(__file__))  # app.py and tasks.py live here
wsgi_app = "app:app"
worker_class = "asgi"
bind = "127.0.0.1:8000"
workers = 2
accesslog = "-"

dirty_apps = [
    "tasks:EmailWorker",  # every dirty worker
    "tasks:ImageWorker",  # at most 2 (its class says workers = 2)
    "tasks:DataWorker",  # at most 2
    "tasks:ScheduledWorker",  # exactly 1: the one scheduler
]
dirty_workers = 4
dirty_threads = 2  # two actions at once per worker: a long ETL does not block its twin
dirty_timeout = 120  # Celery's time_limit; per-call timeout= in app.py is tighter
dirty_graceful_timeout = 10
