"""The Celery worker's entry point: `celery -A engine.worker worker --pool solo -n NAME@%h`.

Like `streamlit_app.py`, this module is an entry point: it reads the settings (BROKER_URL,
DATABASE_URL, ...) once, when the worker starts, and stops with a sentence on a bad one.
"""

import sys

from engine.errors import ConfigError
from engine.queue import make_app
from engine.settings import Settings

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(f"error: {exc}")
if not _settings.broker_url:
    sys.exit("error: BROKER_URL is not set; a worker needs the Redis URL of the queue, e.g. redis://host:6379/0")

app = make_app(_settings.broker_url)
