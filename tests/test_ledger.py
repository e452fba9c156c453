"""Admission by memory: a fair queue in front of one gate, bounded waits, per-visitor limits."""

import threading
import time

import pytest

from engine.errors import Busy
from engine.memory.admission import Gate, VisitorLimits
from engine.models import Request, StageEvent
from engine.pipeline import generate


def hold(gate: Gate, need: float, log: list, name: str, release: threading.Event, waits: list | None = None):
    def run():
        try:
            with gate.admit(need, on_wait=(waits.append if waits is not None else None)):
                log.append(f"{name} in")
                release.wait(10)
                log.append(f"{name} out")
        except Busy as exc:
            log.append(f"{name} busy: {exc}")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def settle():
    time.sleep(0.4)


def test_a_render_waits_until_its_peak_fits_and_the_queue_is_fair(settings):
    gate = Gate(settings, max_wait_s=30, free_mb=lambda: 200.0)
    log, waits = [], []
    first, second, third = threading.Event(), threading.Event(), threading.Event()
    a = hold(gate, 150, log, "a", first)
    settle()
    b = hold(gate, 100, log, "b", second, waits)  # does not fit beside a
    settle()
    c = hold(gate, 10, log, "c", third)  # would fit, but b came first
    settle()
    assert log == ["a in"] and gate.waiting == 2
    assert waits and waits[-1].position == 1 and waits[-1].free_mb == 50
    first.set()
    settle()
    assert log[:3] == ["a in", "a out", "b in"] and "c in" in log  # b, then c beside it (100 + 10 fit)
    second.set()
    third.set()
    for thread in (a, b, c):
        thread.join()


def test_the_wait_is_bounded_with_a_sentence(settings):
    gate = Gate(settings, max_wait_s=0.5, free_mb=lambda: 100.0)
    log, release = [], threading.Event()
    a = hold(gate, 90, log, "a", release)
    settle()
    b = hold(gate, 90, log, "b", threading.Event())
    b.join()
    release.set()
    a.join()
    assert log[1].startswith("b busy: the server is busy: 1 render(s) running and 0 waiting ahead of yours")
    assert gate.waiting == 0 and gate.running == 0


def test_when_nothing_runs_the_head_starts_even_if_it_is_large(settings):
    gate = Gate(settings, max_wait_s=1, free_mb=lambda: 50.0)
    with gate.admit(500):
        assert gate.running == 1


def test_one_generation_at_a_time_per_visitor_and_a_rate_limit():
    limits = VisitorLimits(per_window=3, window_s=60)
    with limits.hold("v1"), pytest.raises(Busy, match="previous video is still being made"), limits.hold("v1"):
        pass
    with limits.hold("v2"):
        pass  # another visitor is not held up
    for _ in range(2):
        with limits.hold("v1"):
            pass
    with pytest.raises(Busy, match="3 videos in the last 1 minutes"), limits.hold("v1"):
        pass


def test_concurrent_generations_take_turns_through_the_gate(settings):
    """Four requesters, room for one render at a time: all succeed, never two renders at once."""
    gate = Gate(settings, max_wait_s=120, free_mb=lambda: 60.0)
    results, queued, errors = [], [], []
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def on_event(event):
        if isinstance(event, StageEvent) and event.stage == "queued":
            queued.append(event.message)
        if isinstance(event, StageEvent) and event.stage == "render":
            with lock:
                running["now"] += 1
                running["most"] = max(running["most"], running["now"])
        if isinstance(event, StageEvent) and event.stage in ("done", "error"):
            with lock:
                running["now"] -= 1

    def requester(n):
        try:
            results.append(generate(Request(f"Stay hungry, number {n}.", tier="low"), settings, on_event, gate=gate))
        except Exception as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=requester, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4 and all(r.status == "ok" for r in results)
    assert running["most"] == 1 and queued and "position" in queued[0]
