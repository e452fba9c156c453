import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.memory.reading import MB, container_memory, read_memory, tree_rss_mb
from engine.memory.sampler import TreeSampler, _Tree
from tests.helpers import wait_for


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cgroup_v2_own_cgroup_and_tightest_ancestor(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/app.slice/web.scope\n",
            "sys/fs/cgroup/app.slice/web.scope/memory.max": "max\n",
            "sys/fs/cgroup/app.slice/web.scope/memory.current": str(100 * MB),
            "sys/fs/cgroup/app.slice/memory.max": str(512 * MB),
            "sys/fs/cgroup/app.slice/memory.current": str(300 * MB),
            "sys/fs/cgroup/app.slice/memory.stat": f"anon 1\ninactive_file {40 * MB}\nactive_file 5\n",
        },
    )
    found = container_memory(root)
    assert found.limit_mb == 512
    assert found.used_mb == 260  # usage less inactive file cache
    assert found.headroom_mb == 252


def test_cgroup_v2_namespaced_root(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/memory.max": str(256 * MB),
            "sys/fs/cgroup/memory.current": str(56 * MB),
        },
    )
    assert container_memory(root).headroom_mb == 200


def test_cgroup_v2_unlimited_is_none(tmp_path):
    root = write(
        tmp_path,
        {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n", "sys/fs/cgroup/memory.current": "1"},
    )
    assert container_memory(root) is None


def test_cgroup_v1_with_inactive_file(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n0::/\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(1024 * MB),
            "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": str(600 * MB),
            "sys/fs/cgroup/memory/docker/abc/memory.stat": f"cache 9\ntotal_inactive_file {100 * MB}\n",
        },
    )
    found = container_memory(root)
    assert (found.limit_mb, found.used_mb) == (1024, 500)


def test_cgroup_v1_path_not_visible_falls_back_to_mount_root(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "9:memory:/docker/abc\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": str(512 * MB),
            "sys/fs/cgroup/memory/memory.usage_in_bytes": str(12 * MB),
        },
    )
    assert container_memory(root).headroom_mb == 500


def test_cgroup_v1_unlimited_is_none(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "9:memory:/\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/memory/memory.usage_in_bytes": "100",
        },
    )
    assert container_memory(root) is None


def test_no_cgroup_file_means_no_container(tmp_path):
    assert container_memory(tmp_path) is None


def test_available_is_bound_by_the_container(tmp_path):
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/memory.max": str(512 * MB),
            "sys/fs/cgroup/memory.current": str(312 * MB),
        },
    )
    reading = read_memory(None, sys_root=root)
    assert reading.bound_by == "container"
    assert reading.available_mb == 200
    assert reading.container_limit_mb == 512


def test_available_is_bound_by_the_cap_less_the_app(tmp_path):
    cap = int(tree_rss_mb(os.getpid())) + 300  # this test process grows with the tests run before it
    reading = read_memory(max_memory_mb=cap, sys_root=tmp_path)
    assert reading.bound_by == "MAX_MEMORY_MB"
    assert reading.available_mb == pytest.approx(cap - reading.app_rss_mb, abs=5)
    assert 250 < reading.available_mb < 350 and reading.app_rss_mb > 10


# Touch one byte per page so the pages are resident, not just reserved.
HOG = "import time; block = bytearray({mb} << 20); block[::4096] = b'x' * len(block[::4096]); time.sleep({s})"


def test_tree_rss_counts_grandchildren():
    inner = HOG.format(mb=60, s=3)
    outer = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {inner!r}])"
    proc = subprocess.Popen([sys.executable, "-c", outer])
    try:
        deadline = time.monotonic() + 10
        rss = 0.0
        while time.monotonic() < deadline and rss < 60:
            rss = tree_rss_mb(proc.pid)
            time.sleep(0.05)
        assert rss >= 60
    finally:
        proc.kill()
        proc.wait()
        for child in __import__("psutil").Process().children(recursive=True):
            child.kill()


@pytest.mark.parametrize("read_at_start", ["the command", "nothing"])
def test_a_forked_copy_of_the_root_is_not_counted_twice(read_at_start):
    """A child forked but not exec'd (Python's subprocess runs `preexec_fn` there) shares the root's
    pages. The root's command may read empty when it is read too early, as it starts: read again."""
    hog = HOG.format(mb=60, s=0).replace("time.sleep(0)", "import os; os.fork(); time.sleep(60)")  # killed below
    proc = subprocess.Popen([sys.executable, "-c", hog])
    try:
        wait_for(lambda: len(psutil.Process(proc.pid).children()) == 1 and tree_rss_mb(proc.pid) >= 110)
        tree = _Tree(proc.pid, rescan_every=1)
        if read_at_start == "nothing":
            tree.command = b""
        assert 60 <= tree.held_mb() < 80  # counted twice, 120
    finally:
        for child in psutil.Process(proc.pid).children():
            child.kill()
        proc.kill()
        proc.wait()


def test_sampler_keeps_peak_and_timeline_at_20_hz_or_more():
    proc = subprocess.Popen([sys.executable, "-c", HOG.format(mb=80, s=1)])
    with TreeSampler(proc.pid) as sampler:
        proc.wait()
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(sampler.timeline))
    assert sampler.peak_mb >= 80
    assert gaps[len(gaps) // 2] <= 0.05  # the median gap: a machine's stalls stretch a few, not the rate
    assert max(rss for _, rss in sampler.timeline) == pytest.approx(sampler.peak_mb, abs=0.1)


def test_the_timeline_keeps_25_hz_when_samples_come_late(monkeypatch):
    """On a busy machine the 10 ms sampling loop runs every 13 ms: the timeline's points stay on
    their 40 ms grid (they were kept 40 ms after the last, every 52 ms: 19 Hz)."""
    from types import SimpleNamespace

    import engine.memory.sampler as module

    clock = [0.0]
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    sampler = TreeSampler(os.getpid())
    sampler._tree = SimpleNamespace(held_mb=lambda: 50.0)  # a steady tree: no point is a new peak's
    for n in range(200):
        clock[0] = n * 0.013
        sampler.sample()
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(sampler.timeline))
    assert gaps[len(gaps) // 2] < 0.045  # 0.039 or 0.052 on the grid; 0.052 every time without it
    assert 2.6 / 0.04 - 1 <= len(sampler.timeline) <= 2.6 / 0.04 + 1


def test_watchdog_fires_once_over_budget():
    proc = subprocess.Popen([sys.executable, "-c", HOG.format(mb=120, s=10)])
    fired = []

    def kill(rss):
        fired.append(rss)
        proc.kill()

    with TreeSampler(proc.pid, budget_mb=60, on_over=kill) as sampler:
        proc.wait(timeout=20)
    assert len(fired) == 1 and fired[0] > 60
    assert sampler.over_budget_mb == fired[0]
