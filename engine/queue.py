"""Generation jobs on Celery, with Redis as broker and result backend (when BROKER_URL is set).

The job that crosses the queue is the same plain request the in-process path runs. A
worker runs it through the same isolated render chain, under its own host's memory
monitor, so each worker picks tiers from its own memory. Messages are acknowledged only
when a job ends (`acks_late`): a worker killed mid-job leaves its job to be delivered
again, to another worker, once the visibility timeout passes.
"""

from __future__ import annotations

import threading
import time

from celery import Celery

TASK = "quote_to_speak.generate"
# How long a job taken by a worker that died waits before it is handed out again. Longer than
# any one render (MoviePy at 1080p for 300 s takes about 45 s here), or a slow job would be
# handed to a second worker while the first still works on it.
VISIBILITY_TIMEOUT_S = 120


def make_app(broker_url: str) -> Celery:
    app = Celery("quote_to_speak", broker=broker_url, backend=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes a job only when it can start it
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 86400,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        # A few quick retries, not the default minutes: callers poll again anyway.
        result_backend_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "retry_policy": {"max_retries": 3, "interval_max": 1},
        },
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    app.task(bind=True, name=TASK)(_generate)
    return app


def worker_name() -> str:
    from engine.history.store import host_name

    return host_name()


def _generate(task, job: dict) -> dict:
    """Run one generation on this worker; progress goes to the result backend as it happens."""
    from engine.errors import QuoteError
    from engine.models import AttemptEvent, MemorySample, StageEvent
    from engine.pipeline import generate
    from engine.service import shared_gate, shared_store
    from engine.settings import Settings
    from engine.wire import request_from_dict, result_json

    settings = Settings.from_env()
    request = request_from_dict(job)
    redelivered = bool(task.request.delivery_info and task.request.delivery_info.get("redelivered"))
    state = {"stage": "started", "message": f"running on {worker_name()}", "samples": [], "attempts": [],
             "worker": worker_name(), "redelivered": redelivered}  # fmt: skip
    last = [0.0]
    task_id = task.request.id  # memory samples arrive on the sampler's thread, where Celery's request is empty
    lock = threading.Lock()

    def publish(force: bool = False) -> None:
        with lock:
            if force or time.monotonic() - last[0] > 0.5:  # at most two updates a second
                last[0] = time.monotonic()
                task.update_state(task_id=task_id, state="PROGRESS", meta=state)

    def on_event(event) -> None:
        if isinstance(event, StageEvent):
            state.update(stage=event.stage, message=event.message)
            publish(force=True)
        elif isinstance(event, MemorySample):
            state["samples"].append([round(event.t_s, 2), round(event.rss_mb, 1), round(event.budget_mb), event.method])
            state["samples"] = state["samples"][-600:]
            publish()
        elif isinstance(event, AttemptEvent):
            state["attempts"].append(event.attempt.__dict__)
            publish(force=True)

    publish(force=True)
    store = shared_store(settings)
    if redelivered:
        store.mark_interrupted()  # the lost worker's row, when it ran on this machine
    try:
        result = generate(request, settings, on_event, store, shared_gate(settings))
        return {**result_json(result), "worker": worker_name(), "redelivered": redelivered, "exit_code": 0}
    except QuoteError as exc:
        data = result_json(exc.result) if exc.result is not None else {"status": "error"}
        return {**data, "status": "error", "error": str(exc), "exit_code": exc.exit_code, "worker": worker_name(),
                "redelivered": redelivered}  # fmt: skip
