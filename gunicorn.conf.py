"""Gunicorn settings for the web process: `gunicorn -c gunicorn.conf.py "mailer:create_app()"`.

With PROMETHEUS_MULTIPROC_DIR set, every gunicorn worker counts into files in that directory and /metrics
adds them up; the directory is emptied when gunicorn starts, and a worker's live files go when it exits.
"""
import os
import shutil

# The request id (X-Request-ID, set by the app) in each access line, to find the app's lines for a request.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus rid=%({x-request-id}o)s'


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        # Counts of an earlier run would be added to this one's.
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
