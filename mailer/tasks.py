"""Celery bound to the Flask app (the pattern of Flask's Celery docs); the tasks live in worker/."""
from __future__ import annotations

from datetime import timedelta

from celery import Celery, Task
from flask import Flask

from .config import digest_crontab


def beat_schedule(config: dict) -> dict:
    """What beat runs: the outbox sweep, welcome steps, digests scheduled for a time (resends too), subject tests
    due and the counters always; clicks, the purge, the sunset rule, the feed and digests when configured."""
    sweep = config["SWEEP_SECONDS"]
    schedule = {
        "sweep-due-mail": {"task": "worker.tasks.deliver_due", "schedule": timedelta(seconds=sweep),
                           "kwargs": {"sweep": True}, "options": {"expires": sweep * 2}},
        "welcome-steps": {"task": "worker.tasks.advance_welcome", "schedule": timedelta(seconds=sweep),
                          "options": {"expires": sweep * 2}},
        "digests-due": {"task": "worker.tasks.start_due_digests", "schedule": timedelta(seconds=sweep),
                        "options": {"expires": sweep * 2}},
        "subject-tests-due": {"task": "worker.tasks.decide_subject_tests", "schedule": timedelta(seconds=sweep),
                              "options": {"expires": sweep * 2}},
        # The counters' deltas folded into their rows, and once an hour counted afresh (people/tallies).
        "fold-tallies": {"task": "worker.tasks.fold_tallies", "schedule": timedelta(seconds=sweep),
                         "options": {"expires": sweep * 2}},
        "check-tallies": {"task": "worker.tasks.check_tallies", "schedule": timedelta(hours=1),
                          "options": {"expires": 3600}},
    }
    if config.get("REDIS_URL"):  # clicks wait there (click_buffer); reading results stores them too
        schedule["store-clicks"] = {"task": "worker.tasks.store_clicks", "schedule": timedelta(seconds=sweep * 5),
                                    "options": {"expires": sweep * 10}}
    if config.get("UNCONFIRMED_PURGE_DAYS"):
        schedule["purge-unconfirmed"] = {"task": "worker.tasks.purge_unconfirmed", "schedule": timedelta(hours=1),
                                         "options": {"expires": 3600}}
    if config.get("SUNSET_MONTHS"):  # the sunset rule, off by default (people/sunset)
        schedule["sunset-rule"] = {"task": "worker.tasks.apply_sunset_rule", "schedule": timedelta(days=1),
                                   "options": {"expires": 3600}}
    if config.get("FEED_URL"):
        poll = config["FEED_POLL_SECONDS"]
        schedule["poll-feed"] = {"task": "worker.tasks.fetch_feed", "schedule": timedelta(seconds=poll),
                                 "options": {"expires": poll}}
    if config.get("DIGEST_SCHEDULE"):
        schedule["scheduled-digest"] = {"task": "worker.tasks.send_scheduled_digest",
                                        "schedule": digest_crontab(config["DIGEST_SCHEDULE"])}
        # The monthly summary: the 1st of each month, at the hour and minute of DIGEST_SCHEDULE.
        minute, hour = config["DIGEST_SCHEDULE"].split()[:2]
        schedule["monthly-digest"] = {"task": "worker.tasks.send_scheduled_digest", "kwargs": {"audience": "monthly"},
                                      "schedule": digest_crontab(f"{minute} {hour} 1 * *")}
    return schedule


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["worker.tasks"])
    celery_app.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        task_default_queue=app.config.get("CELERY_QUEUE", "celery"),
        task_ignore_result=True,
        task_acks_late=True,                 # a task lost with its worker is redelivered...
        task_reject_on_worker_lost=True,     # ...even when the worker was killed outright
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A signup must not wait on a broker that is down: the outbox row is the promise, the task only a wake-up.
        task_publish_retry=False,
        broker_connection_timeout=2,
        beat_schedule=beat_schedule(app.config),
        beat_schedule_filename=f"{app.config['INSTANCE_PATH']}/celerybeat-schedule",
        worker_hijack_root_logger=False,
    )
    if celery_app.conf.broker_url.startswith("redis"):
        celery_app.conf.broker_transport_options = {"socket_connect_timeout": 2, "socket_timeout": 5, "max_retries": 0}
    celery_app.conf.update(app.config.get("CELERY", {}))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
