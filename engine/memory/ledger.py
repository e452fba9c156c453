"""Host-wide admission: every process on this host that renders draws from one memory ledger.

The ledger is a small JSON file under DATA_DIR (one per host name), read and written under
an exclusive `flock`. A reservation belongs to a live process: entries whose process is gone
(killed, crashed) are dropped the next time anyone looks, so a dead process frees its share
at once. App sessions, CLI runs, the sweep and local Celery workers all admit through it.

A render starts when its predicted need fits what is free: the render capacity (what one
render could hold if none were running: available memory plus what the running renders
hold now, less a safety margin) minus what the running renders reserved. Requests are
served in arrival order (the head first, so a large request is not starved by small ones
behind it). The head steps down to a lower tier only when the wait for its own would run
past `step_down_after_s` and the lower one fits now; a request that waits longer than
`max_wait_s` is refused as busy. When nothing runs, the head always starts: the watchdog and
the fallback chain protect a request larger than its prediction.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Busy
from engine.memory.processes import alive, pid_namespace, start_ticks
from engine.memory.reading import read_memory
from engine.memory.sampler import renders_anon_mb

log = logging.getLogger(__name__)

SAFETY_MARGIN_MB = 16.0
SAFETY_MARGIN_SHARE = 0.10
# A request waits this long for its tier before it steps down. Most renders take about a second;
# a MoviePy render with motion takes about a second per second of video at 1080p, and a 1080p
# still card does not fit beside one in 512 MB: waiting out such a render keeps 1080p.
STEP_DOWN_AFTER_S = 45.0


def attempt_budget_mb(available_mb: float) -> float:
    """What renders may hold of `available_mb`: all of it less a safety margin."""
    return max(0.0, available_mb - max(SAFETY_MARGIN_MB, available_mb * SAFETY_MARGIN_SHARE))


@dataclass(frozen=True)
class Need:
    """One way to serve a request (a tier), with the memory it reserves and how long it holds it."""

    label: str
    need_mb: float
    hold_s: float


@dataclass(frozen=True)
class Waiting:
    position: int  # 1 is next
    waited_s: float
    need_mb: float
    free_mb: float
    running: int
    expected_wait_s: float | None  # when the renders ahead are predicted to leave room; None: unknown


@dataclass(frozen=True)
class Grant:
    """What admission gave: which need (0 is the best), after how long, why a lower one, and what
    the render may hold: its reservation, or the whole capacity when that is smaller (a forced
    tier larger than the machine)."""

    index: int
    need: Need
    waited_s: float
    stepped_down: str | None  # the sentence, when a lower need was taken to avoid a long wait
    ticket: str
    budget_mb: float


@dataclass(frozen=True)
class LedgerView:
    running: int
    waiting: int
    reserved_mb: float


_TICKET_FIELDS = {"pid": int, "born": float, "seq": int, "state": str, "need_mb": float}


class Ledger:
    def __init__(
        self,
        folder: Path,
        max_memory_mb: int | None = None,
        max_wait_s: float = 120.0,
        step_down_after_s: float = STEP_DOWN_AFTER_S,
        capacity_mb: Callable[[], float] | None = None,
        poll_s: float = 0.1,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # One ledger per host (and PID namespace: containers that share a host name, as in a pod,
        # have processes of their own, which cannot see each other's).
        name = f"{socket.gethostname() or 'host'}-{pid_namespace()}"
        self.path = folder / f"memory-ledger-{name}.json"
        self._lock_path = folder / f"memory-ledger-{name}.lock"
        self.max_memory_mb = max_memory_mb
        self.max_wait_s = max_wait_s
        self.step_down_after_s = step_down_after_s
        self._capacity = capacity_mb
        self.poll_s = poll_s
        self._thread_lock = threading.Lock()  # flock is per open file: threads of one process take turns here

    # what the memory allows

    def headroom_mb(self) -> float:
        """Available memory plus what the running renders hold now (they will give it back)."""
        with self._locked() as state:
            owners = {t["pid"] for t in state["tickets"].values() if t["state"] == "running"}
        return self._headroom(owners)

    def capacity_mb(self) -> float:
        """What one render could hold if none were running now: the headroom less a safety margin."""
        if self._capacity is not None:
            return self._capacity()
        return attempt_budget_mb(self.headroom_mb())

    def _headroom(self, owners: set[int]) -> float:
        reading = read_memory(self.max_memory_mb)
        return reading.available_mb + sum(renders_anon_mb(pid) for pid in owners)

    def _measured_capacity(self, owners: set[int]) -> float:
        return self._capacity() if self._capacity is not None else attempt_budget_mb(self._headroom(owners))

    def view(self) -> LedgerView:
        with self._locked() as state:
            tickets = list(state["tickets"].values())
        running = [t for t in tickets if t["state"] == "running"]
        return LedgerView(len(running), len(tickets) - len(running), sum(t["need_mb"] for t in running))

    @property
    def running(self) -> int:
        return self.view().running

    @property
    def waiting(self) -> int:
        return self.view().waiting

    # admission

    @contextmanager
    def admit(
        self, needs: Sequence[Need], on_wait: Callable[[Waiting], None] | None = None, max_wait_s: float | None = None
    ) -> Iterator[Grant]:
        """Wait for room for `needs[0]` (or, past the step-down bound, a later one that fits),
        hold it while the body runs, and free it after; Busy when the wait (`max_wait_s`, else
        the ledger's) runs out."""
        if not needs:
            raise ValueError("admit needs at least one need")
        ticket = uuid.uuid4().hex
        started = time.monotonic()
        pid = os.getpid()  # now, not when the ledger was made: a forked child files its own tickets
        with self._locked() as state:
            state["seq"] += 1
            filed = {
                "pid": pid, "born": start_ticks(pid), "seq": state["seq"], "state": "waiting",
                "need_mb": needs[0].need_mb, "label": needs[0].label, "since": time.time(), "ends": None,
            }  # fmt: skip
            state["tickets"][ticket] = dict(filed)
        try:
            grant = self._wait_turn(
                ticket, filed, needs, started, on_wait, self.max_wait_s if max_wait_s is None else max_wait_s
            )
        except BaseException:
            self._drop(ticket)
            raise
        try:
            yield grant
        finally:
            self._drop(ticket)

    def _wait_turn(
        self, ticket: str, filed: dict, needs: Sequence[Need], started: float,
        on_wait: Callable[[Waiting], None] | None, max_wait_s: float,
    ) -> Grant:  # fmt: skip
        owners: set[int] = set()
        while True:
            # Memory is measured outside the lock (a few milliseconds), from the owners seen last time.
            capacity = self._measured_capacity(owners)
            with self._locked() as state:
                # A ledger file removed or found malformed while this waited: filed again, in its place.
                state["tickets"].setdefault(ticket, dict(filed))
                running = [t for t in state["tickets"].values() if t["state"] == "running"]
                now_owners = {t["pid"] for t in running}
                if now_owners - owners:  # a render started since: measure again before deciding
                    decision: Grant | Waiting | Busy | None = None
                else:
                    decision = self._decide(state, ticket, needs, time.monotonic() - started, capacity, max_wait_s)
                    if isinstance(decision, Grant):
                        state["tickets"][ticket].update(
                            state="running", need_mb=decision.need.need_mb, label=decision.need.label,
                            ends=time.time() + decision.need.hold_s,
                        )  # fmt: skip
                        return decision
                owners = now_owners
            if decision is None:
                continue
            if isinstance(decision, Busy):
                raise decision
            if on_wait is not None and isinstance(decision, Waiting):
                on_wait(decision)
            time.sleep(self.poll_s)

    def _decide(
        self, state: dict, ticket: str, needs: Sequence[Need], waited: float, capacity: float, max_wait_s: float
    ) -> Grant | Waiting | Busy:
        tickets = state["tickets"]
        running = [t for t in tickets.values() if t["state"] == "running"]
        queue = sorted((t["seq"], key) for key, t in tickets.items() if t["state"] == "waiting")
        position = [key for _, key in queue].index(ticket) + 1
        free = capacity - sum(t["need_mb"] for t in running)
        expected = _expected_wait_s(running, needs[0].need_mb - free)
        if position == 1:
            grant = self._pick(needs, free, capacity, running, expected, waited, ticket)
            if grant is not None:
                return grant
        if waited >= max_wait_s:
            return Busy(len(running), position - 1, waited, needs[0].need_mb, free)
        return Waiting(position, waited, needs[0].need_mb, free, len(running), expected)

    def _pick(self, needs, free, capacity, running, expected, waited, ticket) -> Grant | None:
        def grant(index: int, why: str | None = None) -> Grant:
            return Grant(index, needs[index], waited, why, ticket, min(needs[index].need_mb, capacity))

        if needs[0].need_mb <= free:
            return grant(0)
        if not running:  # nothing to wait for: the best that fits, else the cheapest (the watchdog guards it)
            return grant(next((i for i, n in enumerate(needs) if n.need_mb <= capacity), len(needs) - 1))
        # Step down when the wait for the best would run past the bound: as predicted, or as waited
        # already (a render that overruns its predicted end leaves the prediction at zero).
        too_long = expected is None or waited + expected > self.step_down_after_s
        for index, need in enumerate(needs[1:], start=1):
            if too_long and need.need_mb <= free:
                wait = "longer than it can fit" if expected is None else f"about {waited + expected:.0f} s"
                return grant(index, (
                    f"stepped down from {needs[0].label} to {need.label}: {needs[0].label} would have waited {wait} "
                    f"behind {len(running)} running render(s), over the {self.step_down_after_s:.0f} s bound"
                ))  # fmt: skip
        return None

    def _drop(self, ticket: str) -> None:
        with self._locked() as state:
            state["tickets"].pop(ticket, None)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The ledger's state under an exclusive lock, with dead processes' entries dropped;
        written back (atomically) when the body changes it."""
        with self._thread_lock, open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            before = json.dumps(state, sort_keys=True)
            state["tickets"] = {k: t for k, t in state["tickets"].items() if alive(t["pid"], t["born"])}
            yield state
            after = json.dumps(state, sort_keys=True)
            if after != before:
                partial = self.path.with_name(f".{self.path.name}.part")  # one name: only the lock holder writes
                partial.write_text(after)
                os.replace(partial, self.path)

    def _read(self) -> dict[str, Any]:
        """The state on disk; a missing, unreadable or malformed file, or malformed tickets, are
        dropped (their reservations are lost, not honoured: the watchdog still guards)."""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"seq": 0, "tickets": {}}
        except (OSError, ValueError) as exc:
            log.warning("the memory ledger %s is unreadable (%s); starting it afresh", self.path, exc)
            return {"seq": 0, "tickets": {}}
        if not isinstance(state, dict) or not isinstance(state.get("seq"), int):
            log.warning("the memory ledger %s is malformed; starting it afresh", self.path)
            return {"seq": 0, "tickets": {}}
        tickets = state.get("tickets")
        good = {
            key: ticket for key, ticket in (tickets.items() if isinstance(tickets, dict) else ())
            if isinstance(ticket, dict)
            and all(isinstance(ticket.get(name), (int, float) if kind is not str else str)
                    for name, kind in _TICKET_FIELDS.items())
        }  # fmt: skip
        return {"seq": state["seq"], "tickets": good}


def _expected_wait_s(running: list[dict], short_mb: float) -> float | None:
    """When enough running renders are predicted to have ended to free `short_mb`; None if never."""
    if short_mb <= 0:
        return 0.0
    now = time.time()
    freed = 0.0
    for entry in sorted(running, key=lambda t: t["ends"] or now):
        freed += entry["need_mb"]
        if freed >= short_mb:
            return max(0.0, (entry["ends"] or now) - now)
    return None
