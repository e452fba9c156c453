"""The Celery worker's entry point: `celery -A engine.jobs.worker worker --pool solo -n NAME@%h`.

Like `streamlit_app.py`, this module is an entry point: it reads the settings (BROKER_URL,
DATABASE_URL, JOB_LEASE_S, ...) once, when the worker starts, and stops with a sentence on a
bad one. It also runs the worker's job leases (engine.jobs.leases) beside Celery's own loop.
"""

import sys

from celery import signals

from engine.errors import ConfigError
from engine.jobs.celery_app import make_app
from engine.jobs.leases import Leases
from engine.settings import Settings

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(f"error: {exc}")
if not _settings.broker_url:
    sys.exit("error: BROKER_URL is not set; a worker needs the Redis URL of the queue, e.g. redis://host:6379/0")

app = make_app(_settings.broker_url, _settings.job_lease_s)
leases = Leases(_settings.broker_url, _settings.job_lease_s)


@signals.worker_ready.connect
def _start_leases(**_) -> None:
    from engine.app.resources import start_up

    start_up(_settings)  # tidy up after a crash of this worker's host before taking jobs
    leases.start()


@signals.task_received.connect
def _hold_lease(request, **_) -> None:
    leases.hold(request.message.delivery_tag)


@signals.worker_shutdown.connect
def _stop_leases(**_) -> None:
    leases.stop()
