"""Host-wide admission: one memory ledger for every process, a fair queue, bounded waits,
step-downs only past a bound, dead processes' reservations freed at once, per-visitor limits."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engine.errors import Busy, LimitReached
from engine.memory.ledger import Ledger, Need
from engine.memory.limits import VisitorLimits
from engine.models import AttemptEvent, Request, StageEvent
from engine.pipeline import generate
from tests.helpers import ROOT, hold, wait_for


def ledger(folder: Path, capacity: float, **options) -> Ledger:
    return Ledger(folder, capacity_mb=lambda: capacity, poll_s=0.02, **options)


def test_a_render_waits_until_its_need_fits_and_the_queue_is_fair(tmp_path):
    book = ledger(tmp_path, 200)
    log, waits = [], []
    first, second, third = threading.Event(), threading.Event(), threading.Event()
    a = hold(book, [Need("a", 150, 60)], log, "a", first)
    wait_for(lambda: log == ["a in a"])
    b = hold(book, [Need("b", 100, 60)], log, "b", second, waits)  # does not fit beside a
    wait_for(lambda: book.waiting == 1)
    c = hold(book, [Need("c", 10, 60)], log, "c", third)  # would fit, but b came first
    wait_for(lambda: book.waiting == 2 and waits)
    assert log == ["a in a"]
    assert waits[-1].position == 1 and waits[-1].free_mb == 50 and waits[-1].running == 1
    first.set()
    wait_for(lambda: "c in c" in log)
    assert log[:3] == ["a in a", "a out", "b in b"]  # b, then c beside it (100 + 10 fit)
    second.set()
    third.set()
    for thread in (a, b, c):
        thread.join()
    assert book.view().running == book.view().waiting == 0


def test_the_wait_is_bounded_and_busy_carries_its_figures(tmp_path):
    book = ledger(tmp_path, 100, max_wait_s=0.3, step_down_after_s=1000)
    log, release = [], threading.Event()
    a = hold(book, [Need("a", 90, 60)], log, "a", release)
    wait_for(lambda: log == ["a in a"])
    b = hold(book, [Need("b", 90, 60)], log, "b", threading.Event())
    b.join()
    release.set()
    a.join()
    busy = log[1]
    assert isinstance(busy, Busy) and str(busy).startswith("busy: 1 render(s) running and 0 waiting ahead of yours")
    assert (busy.running, busy.ahead, busy.needed_mb, busy.free_mb) == (1, 0, 90, 10) and busy.waited_s >= 0.3
    assert busy.exit_code == 3 and busy.kind == "busy"


def test_when_nothing_runs_the_head_starts_even_if_it_is_large(tmp_path):
    book = ledger(tmp_path, 50)
    with book.admit([Need("huge", 500, 1)]) as grant:
        assert book.running == 1 and grant.index == 0
    with book.admit([Need("high", 500, 1), Need("low", 40, 1)]) as grant:
        assert grant.need.label == "low"  # the best that fits, when one does


def test_it_steps_down_only_when_the_wait_would_run_past_the_bound(tmp_path):
    book = ledger(tmp_path, 200, step_down_after_s=5)
    log, release = [], threading.Event()
    long = hold(book, [Need("long", 120, 60)], log, "long", release)  # predicted to hold for a minute
    wait_for(lambda: log == ["long in long"])
    with book.admit([Need("high", 130, 1), Need("medium", 70, 1)]) as grant:
        assert grant.need.label == "medium" and grant.index == 1
        assert grant.stepped_down.startswith("stepped down from high to medium: high would have waited about ")
        assert grant.stepped_down.endswith("behind 1 running render(s), over the 5 s bound")
    release.set()
    long.join()

    short_log, short_release = [], threading.Event()
    short = hold(book, [Need("short", 120, 0.2)], short_log, "short", short_release)  # about to end
    wait_for(lambda: short_log == ["short in short"])
    threading.Timer(0.3, short_release.set).start()
    with book.admit([Need("high", 130, 1), Need("medium", 70, 1)]) as grant:
        assert grant.need.label == "high" and grant.stepped_down is None  # it waited its turn instead
    short.join()


def test_a_render_may_hold_what_it_reserved_and_never_more_than_the_capacity(tmp_path):
    """Each render's watchdog budget is its own reservation: the reservations of all running
    renders fit the capacity, so their budgets do too, whoever is admitted later."""
    book = ledger(tmp_path, 200)
    with book.admit([Need("huge", 500, 1)]) as grant:  # a forced tier larger than the machine
        assert grant.budget_mb == 200
    with book.admit([Need("alone", 90, 1)]) as grant:
        assert grant.budget_mb == 90  # not the whole 200: another may be admitted beside it


def test_a_render_that_overruns_its_predicted_end_still_lets_the_next_one_step_down(tmp_path):
    book = ledger(tmp_path, 200, step_down_after_s=0.3, max_wait_s=30)
    log, release = [], threading.Event()
    late = hold(book, [Need("late", 120, 0.05)], log, "late", release)  # predicted to end at once; it does not
    wait_for(lambda: log == ["late in late"])
    with book.admit([Need("high", 130, 1), Need("medium", 70, 1)]) as grant:
        assert grant.need.label == "medium" and grant.waited_s >= 0.3  # the bound passed while it waited
    release.set()
    late.join()


@pytest.mark.parametrize("content", ["[]", '{"seq": 3, "tickets": []}', '{"seq": 3, "tickets": {"x": {"pid": 1}}}',
                                     '{"seq": "3", "tickets": {}}'])  # fmt: skip
def test_a_malformed_ledger_file_is_started_afresh(tmp_path, content):
    book = ledger(tmp_path, 100)
    book.path.write_text(content)
    with book.admit([Need("a", 50, 1)]):
        assert book.view().running == 1 and book.view().reserved_mb == 50


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from engine.memory.ledger import Ledger, Need
    book = Ledger(Path(sys.argv[1]), capacity_mb=lambda: 200.0, poll_s=0.02)
    with book.admit([Need("other process", 150, 60)]):
        print("holding", flush=True)
        time.sleep(60)
""")


def test_processes_share_one_ledger_and_a_killed_one_frees_its_share_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        book = ledger(tmp_path, 200, step_down_after_s=1000)
        assert book.view().running == 1 and book.view().reserved_mb == 150
        waits = []

        def waiting(state):  # the other process dies once this one waits for it
            waits.append(state)
            if len(waits) == 1:
                os.kill(holder.pid, signal.SIGKILL)

        started = time.monotonic()
        with book.admit([Need("mine", 100, 1)], on_wait=waiting):
            waited = time.monotonic() - started
        assert waits and waits[0].running == 1  # it waited for the other process...
        assert waited < 60  # ...and went in when that process died, not after the 60 s it would have held
    finally:
        holder.kill()
        holder.wait()


def test_an_unreadable_ledger_file_starts_afresh(tmp_path):
    book = ledger(tmp_path, 100)
    book.path.write_text("{not json")
    with book.admit([Need("a", 50, 1)]):
        assert book.running == 1


def test_a_clock_set_forward_leaves_every_reservation_in_place(tmp_path, monkeypatch):
    """psutil's create_time adds the boot time as the wall clock has it now: stepped by 5 s (a VM
    resumed, NTP), it read every live process in the ledger as another one and dropped its share."""
    import psutil

    book = ledger(tmp_path, 200, step_down_after_s=1000)
    log, release = [], threading.Event()
    a = hold(book, [Need("a", 150, 60)], log, "a", release)
    wait_for(lambda: log == ["a in a"])
    booted = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 5)  # the clock, stepped
    assert book.view().running == 1 and book.view().reserved_mb == 150
    release.set()
    a.join()


def test_a_request_whose_ledger_file_goes_while_it_waits_is_filed_again(tmp_path):
    book = ledger(tmp_path, 200, step_down_after_s=1000)
    log, release, waits = [], threading.Event(), []
    a = hold(book, [Need("a", 150, 60)], log, "a", release)
    wait_for(lambda: log == ["a in a"])
    b = hold(book, [Need("b", 100, 60)], log, "b", release, waits)
    wait_for(lambda: book.waiting == 1 and waits)
    book.path.unlink()  # removed by hand, or found malformed: every reservation in it is lost
    wait_for(lambda: "b in b" in log)  # a's share went with the file: b fits, and no error
    assert not any(isinstance(entry, Exception) for entry in log), log
    release.set()
    a.join()
    b.join()


def test_one_generation_at_a_time_per_visitor_and_a_rate_limit():
    limits = VisitorLimits(per_window=3, window_s=60)
    with limits.hold("v1"), pytest.raises(LimitReached, match="previous video is still being made"), limits.hold("v1"):
        pass
    with limits.hold("v2"):
        pass  # another visitor is not held up
    for _ in range(2):
        with limits.hold("v1"):
            pass
    with pytest.raises(LimitReached, match="3 videos in the last 1 minutes"), limits.hold("v1"):
        pass


def test_concurrent_generations_take_turns_through_the_ledger(settings):
    """Four requesters, room for one render at a time: all succeed, never two renders at once."""
    book = Ledger(settings.data_dir, capacity_mb=lambda: 60.0, poll_s=0.02)
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
        if isinstance(event, AttemptEvent):  # emitted inside the reservation, before it is freed
            with lock:
                running["now"] -= 1

    def requester(n):
        try:
            request = Request(f"Stay hungry, number {n}.", tier="low")
            results.append(generate(request, settings, on_event, ledger=book))
        except Exception as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=requester, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4 and all(r.status == "ok" for r in results)
    assert running["most"] == 1 and queued and queued[0].startswith("waiting for memory: position ")


def test_with_others_on_the_host_the_card_is_drawn_only_once_admitted(settings, monkeypatch):
    """Alone, a generation draws its card beside the speech; with another render holding the room, it
    draws it only once admitted: the drawing (22 MB at 1080p) is outside every reservation, and four
    requesters drawing before admission pushed the 512 MB soak out of memory."""
    import engine.pipeline

    book = Ledger(settings.data_dir, capacity_mb=lambda: 60.0, poll_s=0.02)
    drawn_at, freed_at = [], []
    draw = engine.pipeline._Pictures._draw

    def timed(self, size):
        drawn_at.append(time.monotonic())
        return draw(self, size)

    mastered_at = []
    master = engine.pipeline.master

    def mastering(*args):
        done = master(*args)
        mastered_at.append(time.monotonic())
        return done

    monkeypatch.setattr(engine.pipeline._Pictures, "_draw", timed)
    monkeypatch.setattr(engine.pipeline, "master", mastering)
    log, release = [], threading.Event()
    holder = hold(book, [Need("other", 55.0, 1.0)], log, "other", release)
    wait_for(lambda: log == ["other in other"])

    def free_later():
        freed_at.append(time.monotonic())
        release.set()

    queued = []

    def on_event(event):  # the other frees the room 0.5 s after this one starts to wait for it
        if isinstance(event, StageEvent) and event.stage == "queued" and not queued:
            queued.append(event)
            threading.Timer(0.5, free_later).start()

    result = generate(Request("Stay hungry.", tier="low"), settings, on_event, ledger=book)
    holder.join()
    assert result.status == "ok" and result.stage_s["wait"] > 0.3
    assert len(drawn_at) == 1 and drawn_at[0] > freed_at[0]  # not while the other held the room

    drawn_at.clear()
    mastered_at.clear()
    generate(Request("Stay hungry.", tier="low"), settings, ledger=book)  # alone now
    assert len(drawn_at) == 1 and drawn_at[0] < mastered_at[0]  # beside the speech and its mastering
