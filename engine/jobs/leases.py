"""Leases on the jobs a worker holds, so a lost worker's job is handed out again in seconds.

Kombu's Redis transport emulates acknowledgements: a job a worker has taken waits in the
`unacked` hash with its take time in the `unacked_index` sorted set, and goes back to the
queue once that time is older than the visibility timeout. Left alone, that is a choice
between a long timeout (a killed worker's job waits minutes) and a short one (a slow render
is handed to a second worker while the first still works on it), and kombu looks only
every 100 s. Here each worker renews the take time of the jobs it holds every few seconds,
so the timeout needs to outlast only a missed renewal, not the longest render, and every
worker sweeps for expired leases every few seconds with kombu's own restore.
"""

from __future__ import annotations

import logging
import threading
import time

from kombu import Connection

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 20


def transport_options(lease_s: float) -> dict:
    # The restore mutex is held for milliseconds; if its holder dies, others wait out its expiry.
    return {
        "visibility_timeout": lease_s,
        "unacked_mutex_expire": max(5, int(lease_s)),
        "socket_timeout": 5.0,  # a vanished Redis host must not hold a caller for minutes
        "socket_connect_timeout": 5.0,
    }


class Leases:
    """A worker's thread that renews its jobs' leases and hands out jobs whose lease ran out."""

    def __init__(self, broker_url: str, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.broker_url = broker_url
        self.lease_s = lease_s
        self.renew_every_s = min(5.0, lease_s / 6)  # several renewals fit in one lease
        self.sweep_every_s = min(5.0, lease_s / 4)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, delivery_tag: str) -> None:
        """A job this worker has just taken: renew its lease until it is acknowledged."""
        with self._lock:
            self._held.add(delivery_tag)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="job-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        connection = None
        next_sweep = 0.0  # sweep at once: jobs of a worker lost while none was running
        while True:
            try:
                if connection is None:
                    connection = Connection(self.broker_url, transport_options=transport_options(self.lease_s))
                channel = connection.default_channel
                self.renew(channel)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_every_s
                    channel.qos.restore_visible(num=100, interval=1)
            except Exception:  # Redis restarting: the leases wait; the next round reconnects
                log.warning("could not renew job leases; retrying", exc_info=True)
                if connection is not None:
                    connection.release()
                connection = None
            if self._stop.wait(self.renew_every_s):
                break
        if connection is not None:
            connection.release()

    def renew(self, channel) -> None:
        """Move the take time of every held job to now; forget the ones no longer unacknowledged."""
        with self._lock:
            held = list(self._held)
        if not held:
            return
        now = time.time()
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            for tag in held:
                # XX: renew only; an acknowledged (or handed-out) job must not come back.
                pipe.zadd(channel.unacked_index_key, {tag: now}, xx=True, ch=True)
            gone = [tag for tag, changed in zip(held, pipe.execute(), strict=True) if not changed]
        with self._lock:
            self._held.difference_update(gone)
