"""The Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""
import os
import tempfile

# prometheus-client chooses its multiprocess mode when first imported: settle the directory before anything imports it.
if os.environ.get("WORKER_METRICS_PORT", "0") not in ("", "0") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(tempfile.gettempdir(), f"mailer-worker-metrics-{os.environ['WORKER_METRICS_PORT']}")

from celery.signals import setup_logging, worker_init, worker_process_init, worker_process_shutdown  # noqa: E402

from mailer import create_app
from mailer.extensions import db  # noqa: E402
from mailer.ops import logs, metrics

flask_app = create_app()
app = flask_app.extensions["celery"]


@setup_logging.connect
def _logging(loglevel=None, **_) -> None:
    # Celery leaves logging to us: worker lines look like the web's (LOG_FORMAT), with the delivery id on them.
    logs.configure(flask_app.config["LOG_FORMAT"], loglevel)


@worker_init.connect
def _serve_metrics(**_) -> None:
    # The worker's main process serves what its pool children count (WORKER_METRICS_PORT, the README, Operations).
    port = flask_app.config.get("WORKER_METRICS_PORT")
    if port:
        metrics.serve_worker_metrics(port, flask_app.config["WORKER_METRICS_ADDR"])


@worker_process_init.connect
def _own_connections(**_) -> None:
    # A forked child must not reuse the parent's sockets to the database.
    with flask_app.app_context():
        db.engine.dispose(close=False)


@worker_process_shutdown.connect
def _forget_child(pid=None, **_) -> None:
    metrics.pool_child_exited(pid or os.getpid())
