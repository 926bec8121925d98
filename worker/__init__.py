"""The Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""
from celery.signals import worker_process_init

from mailer import create_app
from mailer.extensions import db

flask_app = create_app()
app = flask_app.extensions["celery"]


@worker_process_init.connect
def _own_connections(**_) -> None:
    # A forked child must not reuse the parent's sockets to the database.
    with flask_app.app_context():
        db.engine.dispose(close=False)
