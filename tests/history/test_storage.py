"""Storage figures and cleanup's boundaries: age, quota, symlinks and `..`, running generations."""

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from engine.history.storage import TEMP_GRACE_S, cleanup, held, scratch, storage_report
from engine.models import Request
from tests.helpers import result

DAY = 86400.0


def output(settings, store, gid: str, size: int, age_s: float, running: bool = False):
    """An output file of `size` bytes and `age_s` seconds, with its history row."""
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
    path = (settings.outputs_dir / f"quote-{gid}.mp4").resolve()
    path.write_bytes(b"\0" * size)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    store.begin(gid, Request("x"))
    if not running:
        store.finish(result(gid, output=path))
    return path


def test_storage_report(settings, store):
    output(settings, store, "a" * 32, 1000, 0)
    report = storage_report(settings, store)
    assert report["outputs"] == {"count": 1, "bytes": 1000}
    assert report["temp"] == {"count": 0, "bytes": 0}
    assert report["database_bytes"] > 0 and report["disk_free_bytes"] > 0
    assert report["memory"]["available_mb"] > 0 and report["memory"]["app_rss_mb"] > 0
    assert "container_limit_mb" in report["memory"]


def test_age_boundary(settings, store):
    old = output(settings, store, "a" * 32, 10, 3 * DAY + 60)
    young = output(settings, store, "b" * 32, 10, 3 * DAY - 60)
    report = cleanup(settings, store, older_than_days=3)
    assert (report.removed_outputs, report.removed_bytes) == (1, 10)
    assert not old.exists() and young.exists()
    assert store.generation("a" * 32).file_removed is True
    assert store.generation("b" * 32).file_removed is False
    assert store.generation("a" * 32).status == "ok"  # the row stays


def test_quota_removes_oldest_first(settings, store):
    tight = replace(settings, max_storage_mb=1)
    files = [output(settings, store, c * 32, 400_000, age) for c, age in (("a", 300), ("b", 200), ("c", 100))]
    report = cleanup(tight, store)
    assert report.removed_outputs == 1
    assert [f.exists() for f in files] == [False, True, True]


def test_a_video_goes_with_its_cover_and_subtitles_aged_by_the_video(settings, store):
    """The sidecars are written after the video (a newer mtime would have put them last in line):
    the quota takes the oldest video with its files, and leaves the next one whole."""
    tight = replace(settings, max_storage_mb=1)
    old = output(settings, store, "a" * 32, 400_000, 300)
    new = output(settings, store, "b" * 32, 400_000, 200)
    sidecars = {}
    for video in (old, new):
        for suffix in (".jpg", ".srt", ".vtt"):
            sidecars[video, suffix] = video.with_suffix(suffix)
            sidecars[video, suffix].write_bytes(b"\0" * 100_000)  # written now: newer than either video
    report = cleanup(tight, store)
    assert report.removed_outputs == 4 and report.removed_bytes == 700_000
    assert not old.exists() and not any(sidecars[old, s].exists() for s in (".jpg", ".srt", ".vtt"))
    assert new.exists() and all(sidecars[new, s].exists() for s in (".jpg", ".srt", ".vtt"))


def test_quota_keeps_the_file_just_made(settings, store):
    tight = replace(settings, max_storage_mb=1)
    newest = output(settings, store, "a" * 32, 2_000_000, 0)
    assert cleanup(tight, store, keep=[newest]).removed_outputs == 0
    assert newest.exists()


def test_a_running_generations_file_is_never_removed(settings, store):
    running = output(settings, store, "a" * 32, 10, 30 * DAY, running=True)
    assert cleanup(settings, store, older_than_days=1).removed_outputs == 0
    assert running.exists()


def test_nothing_outside_data_dir_is_touched(settings, store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.mp4"
    precious.write_bytes(b"keep me")
    stamp = time.time() - 30 * DAY
    os.utime(precious, (stamp, stamp))
    settings.outputs_dir.mkdir(parents=True)
    (settings.outputs_dir / f"quote-{'d' * 32}.mp4").symlink_to(precious)  # a link to a file outside
    (settings.outputs_dir / "linked-folder").symlink_to(outside, target_is_directory=True)
    settings.temp_dir.mkdir(parents=True)
    (settings.temp_dir / ("e" * 32)).symlink_to(outside, target_is_directory=True)
    os.utime(settings.temp_dir / ("e" * 32), (stamp, stamp), follow_symlinks=False)
    dotdot = settings.outputs_dir / ".." / ".." / "outside"
    assert dotdot.resolve() == outside.resolve()
    report = cleanup(replace(settings, max_storage_mb=1), store, older_than_days=0)
    assert report.removed_outputs == 0
    assert precious.read_bytes() == b"keep me" and outside.is_dir()
    assert not (settings.temp_dir / ("e" * 32)).exists()  # the link was swept; its target stays


def test_orphaned_temp_folders_are_swept_but_not_young_or_running_ones(settings, store):
    old = time.time() - 10 * TEMP_GRACE_S
    store.begin("r" * 32, Request("running"))  # not a hex id, but a running row all the same
    folders = {name: settings.temp_dir / name for name in ("a" * 32, "b" * 32, "r" * 32)}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "speech.wav").write_bytes(b"x")
    for name in ("a" * 32, "r" * 32):
        os.utime(folders[name], (old, old))
    assert cleanup(settings, store).swept_temp == 1
    assert not folders["a" * 32].exists()
    assert folders["b" * 32].exists() and folders["r" * 32].exists()
    for folder in (folders["b" * 32], folders["r" * 32]):
        (folder / "speech.wav").unlink()
        folder.rmdir()


def test_files_another_cleanup_removes_while_they_are_listed_are_passed_over(settings, store, monkeypatch):
    """Two processes enforcing the quota or sweeping at once (a generation finishing beside a CLI
    starting): what one removes after the other listed it is gone, not an error."""
    tight = replace(settings, max_storage_mb=1)
    files = [output(settings, store, c * 32, 400_000, age) for c, age in (("a", 300), ("b", 200), ("c", 100))]
    stale = time.time() - 10 * TEMP_GRACE_S
    temps = [settings.temp_dir / (c * 32) for c in "de"]
    for folder in temps:
        folder.mkdir(parents=True)
        (folder / "speech.wav").write_bytes(b"x")
        os.utime(folder, (stale, stale))
    walk, iterdir = os.walk, Path.iterdir

    def walk_losing_the_oldest(top, *args, **kwargs):
        for dirpath, dirnames, filenames in walk(top, *args, **kwargs):
            files[0].unlink(missing_ok=True)  # listed, then removed by the other process
            yield dirpath, dirnames, filenames

    def iterdir_losing_one(folder):
        listed = list(iterdir(folder))
        if folder == settings.temp_dir:
            shutil.rmtree(temps[0], ignore_errors=True)
        return iter(listed)

    monkeypatch.setattr(os, "walk", walk_losing_the_oldest)
    monkeypatch.setattr(Path, "iterdir", iterdir_losing_one)
    report = cleanup(tight, store)
    # The removed file no longer counts: the two left fit the quota.
    assert [f.exists() for f in files] == [False, True, True] and report.removed_outputs == 0
    assert (report.swept_temp, report.unswept_temp) == (1, 0) and not any(folder.exists() for folder in temps)


def test_a_held_scratch_folder_is_left_by_the_sweep_until_it_is_let_go(settings, store):
    """The comparison's and the bench's folders have no running row: they are held instead."""
    later = time.time() + 10 * TEMP_GRACE_S  # every folder is past its grace by then
    with scratch(settings, "sweep-") as folder:
        (folder / "speech.wav").write_bytes(b"x")
        with held(settings.temp_dir / "frames") as frames:
            assert (cleanup(settings, store, now=later).swept_temp, folder.exists(), frames.exists()) == (0, True, True)
        assert cleanup(settings, store, now=later).swept_temp == 1 and not frames.exists()
        assert folder.exists()
    assert not folder.exists()  # removed as it is let go
