"""A real `streamlit run` of the app on a free loopback port, for HTTP and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import ROOT

# Processes that may outlive one test (a server shared by a module); conftest's leak check skips them.
LONG_LIVED: set[int] = set()


class PortTaken(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    """`streamlit run streamlit_app.py`; with `cgroup`, started inside that memory cgroup."""

    def __init__(self, env: dict[str, str], log_path: Path, cgroup=None, drop: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in {**os.environ, **env}.items() if k not in drop}
        self.log_path = log_path
        self.cgroup = cgroup
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> StreamlitServer:
        for _ in range(3):  # the free port found may be taken by another process before Streamlit binds it
            try:
                return self._start()
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError("streamlit found its port taken three times")

    def _start(self) -> StreamlitServer:
        argv = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(self.port),
                "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
        with self.log_path.open("wb") as log:  # the server writes to its own copy of the descriptor
            self.proc = self._popen(argv, log)
        LONG_LIVED.add(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log_path.read_text()[-2000:]
                LONG_LIVED.discard(self.proc.pid)
                if f"Port {self.port} is not available" in said:
                    raise PortTaken(said)
                raise RuntimeError(f"streamlit exited: {said}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")

    def _popen(self, argv: list[str], log) -> subprocess.Popen:
        if self.cgroup is not None:
            from scripts.cgroup import start_in_cgroup

            return start_in_cgroup(self.cgroup, argv, self.env, ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        LONG_LIVED.discard(self.proc.pid)
        print(self.log_path.read_text(errors="replace")[-4000:])  # pytest shows it when the test fails


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
