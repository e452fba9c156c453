"""Batch: a CSV or JSON Lines file of quotes becomes a folder of videos and a manifest.

Every row is read and checked before any work: an unreadable or malformed file is refused with a
sentence naming the line; a row with a bad value gets its sentence in the manifest and the others
go on. Rows run through the same generation as one video (the host's memory ledger decides how many
render at once; with BROKER_URL, on the Celery workers), `workers` at a time. The manifest is
rewritten aside and renamed after each row, and each video is put in place whole, so a crash or
Ctrl-C leaves nothing half-written; running the same command again skips the rows already made.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from engine.choices import (
    ASPECTS,
    CAPTION_STYLES,
    METHOD_CHOICES,
    MUSIC_CHOICES,
    PRESETS,
    SPEEDS,
    TIER_CHOICES,
    TTS_CHOICES,
)  # fmt: skip
from engine.errors import Busy, InvalidInput, QuoteError
from engine.files import write_aside
from engine.jobs.local import OffThread
from engine.models import Request, Result
from engine.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("row", "status", "output", "error", "tier", "method", "peak_rss_mb", "wall_s")
MAX_FILE_BYTES = 20 * 2**20
# The generate options a row may set, by name, with the values each takes (None: free text).
CHOICES: dict[str, tuple[str, ...] | None] = {
    "author": None, "lang": None, "tts": TTS_CHOICES, "speed": SPEEDS, "tier": TIER_CHOICES,
    "method": METHOD_CHOICES, "aspect": tuple(ASPECTS), "preset": tuple(PRESETS), "caption_style": CAPTION_STYLES,
    "background": None, "music": None,
}  # fmt: skip
FLAGS = ("captions", "subtitles", "motion")
_TRUE, _FALSE = {"1", "true", "yes", "y", "on"}, {"0", "false", "no", "n", "off", ""}


class BadBatchFile(InvalidInput):
    """The file cannot be read as a batch: nothing was done (exit 2, as for any invalid input)."""


@dataclass(frozen=True)
class Row:
    number: int  # 1 for the first quote
    line: int  # where it starts in the file
    request: Request | None
    error: str | None = None


@dataclass
class BatchReport:
    rows: int = 0
    made: int = 0
    skipped: int = 0  # made by an earlier run
    failed: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 else 1


def read_rows(path: Path, files: bool = True, settings: Settings | None = None) -> list[Row]:
    """Every row of a CSV (a header with `text`) or JSON Lines file (`.jsonl`, one object a line).
    Without `files` (a file uploaded to the public page), music must be a bed: no path on the server.
    With `settings`, each row is checked as a generation would check it (length, language, fonts)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise BadBatchFile(f"{path.name} is over {MAX_FILE_BYTES // 2**20} MB; split it into smaller files")
        raw = path.read_bytes()
    except OSError as exc:
        raise BadBatchFile(f"cannot read {path} ({exc.strerror}); check the path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadBatchFile(f"{path.name} line {line} is not UTF-8 text; save the file as UTF-8") from None
    folder = path.parent if files else None
    lines = _json_lines(text, path.name) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else None
    found = lines if lines is not None else _csv_rows(text, path.name)
    return [_row(n, line, data, folder, settings) for n, (line, data) in enumerate(found, start=1)]


def _json_lines(text: str, name: str) -> Iterator[tuple[int, dict]]:
    for line, content in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit in a quote
        if not content.strip():
            continue
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise BadBatchFile(f"{name} line {line} is not JSON ({exc.msg}); one JSON object per line") from None
        if not isinstance(data, dict):
            raise BadBatchFile(f'{name} line {line} is not a JSON object; write {{"text": "..."}}')
        yield line, data


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    starts = 1
    try:
        header = reader.fieldnames
        if not header or "text" not in [h.strip() for h in header]:
            raise BadBatchFile(f"{name} line 1 has no `text` column; the first line names the columns")
        unknown = [h for h in header if h.strip() not in ("text", *CHOICES, *FLAGS)]
        if unknown:
            offered = ", ".join(("text", *CHOICES, *FLAGS))
            raise BadBatchFile(f"{name} line 1 names unknown column(s) {', '.join(unknown)}; columns: {offered}")
        starts = reader.line_num + 1  # where the next record begins (a quoted cell may span lines)
        for data in reader:
            if None in data:  # more cells than columns
                raise BadBatchFile(f"{name} line {starts} has more cells than the header has columns")
            if any(v.strip() for v in data.values() if v):
                yield starts, {k.strip(): v for k, v in data.items()}
            starts = reader.line_num + 1
    except csv.Error as exc:
        raise BadBatchFile(f"{name} line {starts} is not valid CSV ({exc}); fix the quoting") from None


def _row(number: int, line: int, data: dict, folder: Path | None, settings: Settings | None) -> Row:
    """The row's request, or the sentence saying what is wrong with it."""
    try:
        request = _request(data, folder)
        if settings is not None:
            from engine.validate import validate

            validate(replace(request, music="none") if request.music not in MUSIC_CHOICES else request, settings)
        return Row(number, line, request)
    except InvalidInput as exc:
        return Row(number, line, None, str(exc))


def _request(data: dict, folder: Path | None) -> Request:
    unknown = sorted(set(data) - {"text", *CHOICES, *FLAGS})
    if unknown:
        raise InvalidInput(f"unknown option(s) {', '.join(unknown)}")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("the text is empty; every row needs a quote")
    values: dict = {"text": text}
    for name, choices in CHOICES.items():
        value = data.get(name)
        if value in (None, ""):
            continue
        value = str(value).strip()
        if choices is not None and value not in choices:
            raise InvalidInput(f"{name} {value!r} is not offered; choose one of: {', '.join(choices)}")
        values[name] = value
    for name in FLAGS:
        flag = data.get(name)
        if isinstance(flag, bool):
            values[name] = flag
        elif flag is not None:
            word = str(flag).strip().lower()
            if word not in _TRUE | _FALSE:
                raise InvalidInput(f"{name} {flag!r} is not yes or no")
            values[name] = word in _TRUE
    music = values.get("music", "none")
    if music not in MUSIC_CHOICES:  # a file, beside the batch file unless absolute
        if folder is None:
            raise InvalidInput(f"music {music!r} is not a bed; on the page choose one of: {', '.join(MUSIC_CHOICES)}")
        path = Path(music) if Path(music).is_absolute() else folder / music
        if not path.is_file():
            raise InvalidInput(f"music {music!r} is neither a bed ({', '.join(MUSIC_CHOICES)}) nor a file")
        values["music"] = str(path)  # read when the row runs: rows hold no audio in memory
    return Request(**values)


def load_music(request: Request) -> Request:
    """The row's music file read, just before it runs."""
    if request.music in MUSIC_CHOICES:
        return request
    from engine.audio.music import read_music

    return replace(request, music="upload", music_upload=read_music(Path(request.music)))


def output_for(out_dir: Path, row: Row) -> Path:
    return out_dir / f"{row.number:04d}.mp4"


Runner = Callable[[Request], Result]  # one generation, however it runs; raises QuoteError
Progress = Callable[[Row, dict[str, str]], None]


def run_batch(rows: list[Row], out_dir: Path, run: Runner, workers: int, progress: Progress) -> BatchReport:
    """Make each row's video in `out_dir`, `workers` at a time, keeping DIR/manifest.csv current."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir / MANIFEST)
    report = BatchReport(rows=len(rows))
    lock = threading.Lock()

    def finish(row: Row, entry: dict[str, str]) -> None:
        with lock:
            manifest.record(row.number, entry)
            if entry["status"] == "ok":
                report.made += 1
            else:
                report.failed += 1
        progress(row, entry)

    def one(row: Row) -> None:
        assert row.request is not None
        request = row.request
        try:
            request = replace(load_music(request), out=output_for(out_dir, row))
            while True:
                try:
                    result = run(request)
                    break
                except Busy:  # a batch queues: the row waits for memory however long it takes
                    time.sleep(1.0)
            finish(row, _entry(row, result, None, out_dir))
        except QuoteError as exc:
            finish(row, _entry(row, exc.result, str(exc), out_dir))
        except Exception as exc:  # a bug in one row: the others go on, the traceback is logged
            log.exception("batch row %d failed", row.number)
            finish(row, _entry(row, None, f"internal error ({type(exc).__name__}); please try again", out_dir))

    pending: set[Future] = set()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="batch") as pool:
        for row in rows:
            done = manifest.done(row.number)
            if done is not None and (out_dir / done).is_file():
                report.skipped += 1
                progress(row, {"status": "skipped", "output": done, "error": ""})
                continue
            if row.request is None:
                finish(row, {"row": str(row.number), "status": "invalid", "error": row.error or "", "output": ""})
                continue
            if len(pending) >= max(1, workers):  # bounded: memory stays flat in the number of rows
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # an unexpected error in a row's thread is not swallowed
            pending.add(pool.submit(one, row))
        for future in pending:
            future.result()
    return report


def _entry(row: Row, result: Result | None, error: str | None, out_dir: Path) -> dict[str, str]:
    """The row's manifest line; its output named relative to the folder (the folder may move, and
    the manifest ships in the page's zip: no server paths)."""
    ok = error is None and result is not None and result.output is not None
    output = ""
    if ok and result is not None and result.output is not None:
        output = os.path.relpath(result.output, out_dir.resolve())
    return {
        "row": str(row.number), "status": "ok" if ok else "failed", "output": output, "error": error or "",
        "tier": (result.tier or "") if result else "", "method": (result.method or "") if result else "",
        "peak_rss_mb": f"{result.peak_rss_mb:.1f}" if result else "",
        "wall_s": f"{result.wall_s:.2f}" if result else "",
    }  # fmt: skip


class Manifest:
    """DIR/manifest.csv: one line per row, the last outcome of each; read at start (to resume),
    rewritten aside and renamed after each row (a crash leaves the previous, whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[int, dict[str, str]] = {}
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                for entry in csv.DictReader(f):
                    if entry.get("row", "").isdigit():
                        self.entries[int(entry["row"])] = {k: entry.get(k) or "" for k in MANIFEST_FIELDS}

    def done(self, number: int) -> str | None:
        entry = self.entries.get(number)
        return entry["output"] if entry and entry["status"] == "ok" and entry["output"] else None

    def record(self, number: int, entry: dict[str, str]) -> None:
        line = {k: entry.get(k, "") for k in MANIFEST_FIELDS}
        if self.entries.get(number) == line:
            return  # a rerun that learned nothing new writes nothing
        self.entries[number] = line

        def write(partial: Path) -> None:
            with partial.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
                writer.writeheader()
                writer.writerows(self.entries[n] for n in sorted(self.entries))

        write_aside(self.path, write)


class PageBatch(OffThread):
    """A batch started on the page: runs off the script thread (a page reload finds it again by its
    id), one row at a time through the visitor's limits, and zips the videos and manifest."""

    def __init__(self, rows: list[Row], out_dir: Path, run: Runner, visitor: str = "") -> None:
        super().__init__("page-batch")
        self.rows, self.out_dir, self._run, self.visitor = rows, out_dir, run, visitor
        self._entries: dict[int, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.finished_at: float | None = None  # time.monotonic(), for dropping old batches
        self.report: BatchReport | None = None
        self.error: str | None = None
        self.zip_path: Path | None = None

    def _body(self) -> None:
        import zipfile

        try:
            self.report = run_batch(self.rows, self.out_dir, self._run, 1, self._progress)

            def write(partial: Path) -> None:
                with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:  # MP4s do not shrink
                    for path in sorted(self.out_dir.iterdir()):
                        if path.is_file() and not path.name.startswith("."):
                            archive.write(path, path.name)

            write_aside(self.out_dir / "videos.zip", write)
            self.zip_path = self.out_dir / "videos.zip"
        except Exception as exc:  # shown as a sentence; the traceback is logged
            import logging

            logging.getLogger(__name__).exception("batch failed")
            self.error = f"the batch stopped ({type(exc).__name__}: {exc})"
        finally:
            self.finished_at = time.monotonic()

    def entries(self) -> list[tuple[int, dict[str, str]]]:
        """The rows done so far, in order: a copy, read while the batch goes on."""
        with self._lock:
            return sorted(self._entries.items())

    def _progress(self, row: Row, entry: dict[str, str]) -> None:
        with self._lock:
            self._entries[row.number] = entry
