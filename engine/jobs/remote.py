"""A generation submitted to the Celery workers, polled like an in-process job.

`RemoteGeneration` offers what `LocalGeneration` does (`start`, `wait`, `done`, `snapshot`), so
the page and the CLI do not care where the render runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import AbstractContextManager
from functools import cache

from engine.errors import QueueUnreachable, QuoteError, rebuild
from engine.jobs.celery_app import SOCKET_TIMEOUT_S, TASK, make_app
from engine.jobs.local import GenerationView
from engine.jobs.wire import request_to_payload, result_from_json
from engine.memory.limits import VisitorLimits
from engine.models import Attempt, MemorySample, Request
from engine.settings import Settings

log = logging.getLogger(__name__)
QUEUE = "celery"  # Celery's default queue: a Redis list, pushed on the left, taken from the right


@cache
def _sender(broker_url: str):
    # No result backend here: Redis's would subscribe to every job's result channel, and the
    # result object Celery hands back unsubscribes when it is collected, taking the channel's
    # lock; collected mid-poll, while that lock is held, it deadlocked a poll for minutes.
    return make_app(broker_url, results=False)


@cache
def _results(broker_url: str):
    return make_app(broker_url).backend


@cache
def _redis(broker_url: str):
    import redis

    return redis.Redis.from_url(broker_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)


class RemoteGeneration:
    def __init__(self, request: Request, settings: Settings) -> None:
        self.request = request
        self._url = settings.broker_url
        self._started = time.monotonic()
        self.task_id = ""
        self.worker: str | None = None  # "host/name" of the worker last seen running it
        self._final: GenerationView | None = None
        self._silence_s = settings.queue_silence_s
        self._heard = time.monotonic()  # when the queue last answered
        self._seen = time.monotonic()  # when the job was last seen queued or taken
        self._lease_s = settings.job_lease_s
        self._complained = False

    def start(self, visitor: tuple[VisitorLimits, str] | None = None) -> RemoteGeneration:
        """Send the job. With `visitor`, it counts against that visitor's limits until it ends, as a
        generation in this process does (LimitReached, before anything is sent)."""
        held = None
        if visitor is not None:
            limits, who = visitor
            held = limits.hold(who)
            held.__enter__()
        self._started = time.monotonic()
        try:
            self.task_id = _sender(self._url).send_task(TASK, args=[request_to_payload(self.request)]).id
        except BaseException:
            if held is not None:
                held.__exit__(None, None, None)
            raise
        if held is not None:
            threading.Thread(target=self._release_when_done, args=(held,), name="visitor-hold", daemon=True).start()
        return self

    def _release_when_done(self, held: AbstractContextManager[None]) -> None:
        try:
            self.wait()
        finally:
            held.__exit__(None, None, None)

    def _state(self) -> tuple[str, object]:
        """The job's state and its data (progress, result or exception), read with one GET."""
        try:
            meta = _results(self._url).get_task_meta(self.task_id, cache=False)
            return meta["status"], meta.get("result")
        except Exception:  # Redis restarting: the job goes on; say so and look again
            if not self._complained:
                log.warning("cannot read job %s from the queue; looking again", self.task_id, exc_info=True)
                self._complained = True
            return "UNKNOWN", None

    @property
    def done(self) -> bool:
        return self.snapshot().done

    def wait(self, timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.done:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def snapshot(self) -> GenerationView:
        if self._final is not None:
            return self._final
        elapsed = time.monotonic() - self._started
        state, info = self._state()
        if state == "UNKNOWN":
            silent = time.monotonic() - self._heard
            if silent < self._silence_s:
                return GenerationView("queued", "reconnecting to the queue", elapsed, (), (), False, None, None)
            lost = QueueUnreachable(
                f"the job queue has not answered for {silent:.0f} s (QUEUE_SILENCE_S); the job may still finish on "
                "a worker: look for it on the History page later, or check that Redis at BROKER_URL is running"
            )
            self._final = GenerationView("error", str(lost), elapsed, (), (), True, None, lost)
            return self._final
        self._heard = time.monotonic()
        if state == "SUCCESS":
            self._final = self._finished(info if isinstance(info, dict) else {}, elapsed)
            return self._final
        if state == "FAILURE":
            error = QuoteError(f"the worker failed ({info}); please try again")
            self._final = GenerationView("error", str(error), elapsed, (), (), True, None, error)
            return self._final
        if state != "PENDING":  # started, running: the job is somewhere
            self._seen = time.monotonic()
        if state == "PROGRESS" and isinstance(info, dict):
            self.worker = info.get("worker")
            samples = tuple(MemorySample(t, rss, budget, method) for t, rss, budget, method in info.get("samples", ()))
            attempts = tuple(Attempt(**a) for a in info.get("attempts", ()))
            retry = ", second try after a lost worker" if info.get("delivery", 1) > 1 else ""
            message = f"{info.get('message', '')} (on {info.get('worker')}{retry})"
            return GenerationView(info.get("stage", "started"), message, elapsed, samples, attempts, False, None, None)
        position = self.queue_position()
        if position:
            self._seen = time.monotonic()
        # Neither queued nor started for longer than a lost worker's job takes to come back (its
        # lease, a sweep) and the silence bound: the queue lost it (Redis restarted without it).
        missing = time.monotonic() - self._seen
        if missing > max(self._silence_s, 2 * self._lease_s + 10):
            lost = QueueUnreachable(
                f"the job has been neither in the queue nor on a worker for {missing:.0f} s: the queue lost it "
                "(Redis restarted without it?); please make the video again"
            )
            self._final = GenerationView("error", str(lost), elapsed, (), (), True, None, lost)
            return self._final
        waiting = f"position {position} in the queue" if position else "waiting for a worker"
        return GenerationView("queued", waiting, elapsed, (), (), False, None, None)

    def queue_position(self) -> int | None:
        """1 when this job is next; None when it is not in the queue (taken, or not yet there)."""
        try:
            messages = _redis(self._url).lrange(QUEUE, 0, -1)
        except Exception:  # the queue is only informative; the job goes on without it
            log.debug("cannot read the queue's length", exc_info=True)
            return None
        for index, raw in enumerate(messages):
            try:
                if json.loads(raw).get("headers", {}).get("id") == self.task_id:
                    return len(messages) - index
            except ValueError:
                continue
        return None

    def _finished(self, data: dict, elapsed: float) -> GenerationView:
        self.worker = data.get("worker")
        # No generation id: the worker refused the job before making one (a job lost twice).
        result = result_from_json(data) if data.get("generation_id") else None
        attempts = result.attempts if result else ()
        if data.get("status") == "ok":
            return GenerationView("done", f"done on {data.get('worker')}", elapsed, (), attempts, True, result, None)
        # The same class the worker raised, with its figures: callers branch on the kind, never the text.
        failure = rebuild(data.get("error_kind", "error"), data.get("error") or "the generation failed",
                          data.get("error_details"))  # fmt: skip
        failure.result = result
        return GenerationView("error", str(failure), elapsed, (), attempts, True, None, failure)
