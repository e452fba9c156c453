"""Generation jobs on Celery, with Redis as broker and result backend (when BROKER_URL is set).

The job that crosses the queue is the same plain request the in-process path runs. A
worker runs it through the same isolated render chain, under its own host's memory
monitor, so each worker picks tiers from its own memory. Messages are acknowledged only
when a job ends (`acks_late`): a worker killed mid-job leaves its job to be delivered
again, to another worker, once its lease (engine.jobs.leases) runs out. A job is tried at most
twice: a job that takes its worker down twice is not handed to a third.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery

from engine.jobs.leases import DEFAULT_LEASE_S, transport_options

TASK = "quote_to_speak.generate"
SOCKET_TIMEOUT_S = 5.0
MAX_DELIVERIES = 2  # the first run, and one retry on another worker after a lost one
DELIVERIES_KEY = "quote_to_speak:deliveries:{}"


def make_app(broker_url: str, lease_s: float = DEFAULT_LEASE_S, results: bool = True) -> Celery:
    """The Celery app; with `results=False`, one that only sends jobs (see engine.jobs.remote)."""
    app = Celery("quote_to_speak", broker=broker_url, backend=broker_url if results else None)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes a job only when it can start it
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 86400,
        broker_transport_options=transport_options(lease_s),
        # A few quick retries, not the default minutes: callers poll again anyway. A Redis host that
        # vanishes without a reset must not hold a caller for minutes: sockets time out in seconds.
        result_backend_transport_options={"retry_policy": {"max_retries": 3, "interval_max": 1}},
        redis_socket_timeout=SOCKET_TIMEOUT_S,
        redis_socket_connect_timeout=SOCKET_TIMEOUT_S,
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


def _generate(task, payload: dict) -> dict:
    """Run one generation on this worker; progress goes to the result backend as it happens."""
    from engine.app.resources import shared_ledger, shared_store
    from engine.errors import QuoteError
    from engine.jobs.wire import request_from_payload, result_json
    from engine.models import AttemptEvent, MemorySample, QueueDelivery, StageEvent
    from engine.pipeline import generate
    from engine.settings import Settings

    settings = Settings.from_env()
    request = request_from_payload(payload)
    me = worker_name()
    task_id = task.request.id  # memory samples arrive on the sampler's thread, where Celery's request is empty
    delivery = _count_delivery(task, task_id)
    store = shared_store(settings)
    if delivery > 1:  # the worker that had it was lost mid-job: its row says so, on whichever host it ran
        then = f"taken over by {me}" if delivery <= MAX_DELIVERIES else "not tried again"
        store.mark_lost(task_id, f"its worker was lost mid-job; {then}")
    if delivery > MAX_DELIVERIES:
        return {"status": "error", "error": LOST_TWICE, "error_kind": "render_failed", "exit_code": 1, "worker": me,
                "delivery": delivery}  # fmt: skip
    started = f"taken over by {me} after its first worker was lost" if delivery > 1 else f"running on {me}"
    state: dict[str, Any] = {
        "stage": "started",
        "message": started,
        "samples": [],
        "attempts": [],
        "worker": me,
        "delivery": delivery,
    }
    last = [0.0]
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
    queued = QueueDelivery(task_id, delivery)
    try:
        result = generate(request, settings, on_event, store, shared_ledger(settings), queued)
        return {**result_json(result), "worker": me, "delivery": delivery, "exit_code": 0}
    except QuoteError as exc:
        data = result_json(exc.result) if exc.result is not None else {"status": "error"}
        return {**data, "status": "error", "error": str(exc), "error_kind": exc.kind, "error_details": exc.details(),
                "exit_code": exc.exit_code, "worker": me, "delivery": delivery}  # fmt: skip


LOST_TWICE = (
    "this job was lost twice with the worker running it (a worker killed, perhaps for memory), so it is not "
    "tried a third time; try a lower tier or a shorter quote"
)


def _count_delivery(task, task_id: str) -> int:
    """Which time this job has started on a worker: 1, then 2 after a lost worker, ..."""
    key = DELIVERIES_KEY.format(task_id)
    client = task.app.backend.client
    delivery = int(client.incr(key))
    client.expire(key, task.app.conf.result_expires)
    return delivery
