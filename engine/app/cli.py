"""`python -m engine …`: generate a video, watch memory. Exit 0 ok, 1 failed after every
fallback, 2 invalid input (or a bad setting), 3 not enough memory."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from engine.audio.music import read_music
from engine.choices import (
    ASPECTS,
    CAPTION_STYLES,
    METHOD_CHOICES,
    MUSIC_CHOICES,
    PRESETS,
    SPEEDS,
    TIER_CHOICES,
    TTS_CHOICES,
    WINDOWS,
)  # fmt: skip
from engine.errors import InvalidInput, QuoteError
from engine.jobs.wire import result_json
from engine.models import Request, Result, StageEvent
from engine.settings import Settings
from engine.visuals.background import MAX_UPLOAD_BYTES, PALETTE

EXIT_OK = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description="Quote to Speak: a quote becomes a narrated MP4."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="turn a quote into an MP4")
    gen.add_argument("text", help="the quote")
    gen.add_argument("--author", default="", help="shown under the quote")
    gen.add_argument("--lang", default="en", help="language code (default en)")
    gen.add_argument(
        "--tts",
        choices=TTS_CHOICES,
        default=None,
        help="speech engine (default: TTS_ENGINE, else auto: gTTS, then the neural Piper voice, then eSpeak NG)",
    )
    gen.add_argument("--tld", default="com", help="gTTS accent by Google domain, e.g. co.uk")
    gen.add_argument("--speed", choices=SPEEDS, default="normal", help="speaking rate (default normal)")
    gen.add_argument("--slow", action="store_const", const="slower", dest="speed", help="the same as --speed slower")
    gen.add_argument(
        "--tier",
        choices=TIER_CHOICES,
        default="auto",
        help="quality tier (default: chosen from available memory)",
    )
    gen.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default="auto",
        help="render method to start the chain at; later ones stay as fallbacks",
    )
    gen.add_argument("--no-fallback", action="store_true", help="run the chosen method alone (for tuning)")
    gen.add_argument("--aspect", choices=list(ASPECTS), default="16:9", help="frame shape (default 16:9)")
    gen.add_argument(
        "--preset", choices=list(PRESETS), default=None,
        help="platform preset: reels (9:16, 30 fps: Reels, TikTok, Shorts), youtube (16:9), square (1:1)",
    )  # fmt: skip
    gen.add_argument(
        "--captions",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="highlight each phrase on the card while it is spoken",
    )
    gen.add_argument(
        "--caption-style", choices=CAPTION_STYLES, default="phrase",
        help="phrase: the phrase being spoken; word: the word being spoken, within its phrase",
    )  # fmt: skip
    gen.add_argument("--subtitles", action="store_true", help="an .srt and a .vtt beside the MP4, and a track in it")
    gen.add_argument(
        "--music", default="none", metavar="NAME|PATH|none",
        help=f"music under the voice: a bed ({', '.join(MUSIC_CHOICES[1:])}), an MP3, WAV, OGG or M4A file, or none",
    )  # fmt: skip
    gen.add_argument(
        "--motion",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fade-in and slow zoom, rendered by MoviePy (a fallback renders it still)",
    )
    gen.add_argument("--background", default="midnight", help=f"card background: {', '.join(PALETTE)}")
    gen.add_argument(
        "--background-image", type=Path, default=None, help="a JPEG, PNG or WebP to fill the card (darkened)"
    )
    gen.add_argument("--out", type=Path, default=None, help="where to write the MP4 (default: DATA_DIR/outputs)")
    gen.add_argument("--json", action="store_true", help="print one JSON object")

    ba = commands.add_parser("batch", help="a CSV or JSON Lines file of quotes into a folder of videos")
    ba.add_argument("file", type=Path, help="CSV with a `text` column, or JSON Lines; any generate option by name")
    ba.add_argument("--out", type=Path, default=Path("batch-out"), help="folder for the videos and manifest.csv")
    ba.add_argument("--workers", type=int, default=None, help="rows at once (default: the CPUs; memory decides too)")
    ba.add_argument("--json", action="store_true", help="print one JSON object at the end")

    st = commands.add_parser("stats", help="success rate, fallback rates, memory per generation by tier and method")
    st.add_argument("--window", choices=list(WINDOWS), default="all", help="time window (default all)")
    st.add_argument("--json", action="store_true", help="print one JSON object")

    sto = commands.add_parser("storage", help="outputs and temp files, database size, free disk, memory now")
    sto.add_argument("--json", action="store_true", help="print one JSON object")

    cl = commands.add_parser("cleanup", help="remove old outputs, enforce MAX_STORAGE_MB, sweep orphaned temp")
    cl.add_argument("--older-than-days", type=float, default=None, help="remove outputs older than this")
    cl.add_argument("--json", action="store_true", help="print one JSON object")

    be = commands.add_parser("bench", help="memory and time of every method and tier beside plain MoviePy")
    be.add_argument("--quick", action="store_true", help="the long quote at 1080p only, one run (for CI)")
    be.add_argument("--runs", type=int, default=None, help="runs per cell; the median is kept (default 3)")
    be.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the JSON report")
    be.add_argument("--json", action="store_true", help="print the JSON report")
    be.add_argument("--speech-only", action="store_true", help="the offline voices only, on every bench quote")
    be.add_argument("--end-to-end", action="store_true", help="only the whole generate command against plain MoviePy")

    sw = commands.add_parser("sweep", help="render a quote at every tier and method, side by side, with frames")
    sw.add_argument("text", help="the quote")
    sw.add_argument("--author", default="", help="shown under the quote")
    sw.add_argument("--out", type=Path, default=Path("sweep-results"), help="folder for the frames")
    sw.add_argument("--json", action="store_true", help="print one JSON object")

    cal = commands.add_parser("calibrate", help="measure the cost model's prior and write it where the engine reads it")
    cal.add_argument("--quick", action="store_true", help="FFmpeg and emergency at 16:9, shortest band, once (tests)")
    cal.add_argument("--runs", type=int, default=None, help="runs per cell; the largest peak is kept (default 2)")
    cal.add_argument("--out", type=Path, default=None, help="where to write it (default: the engine's prior)")
    cal.add_argument("--json", action="store_true", help="print the prior as JSON")

    mon = commands.add_parser("monitor", help="live memory readout: host, container, app tree")
    mon.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    mon.add_argument("--count", type=int, default=0, help="stop after this many readings (0: until Ctrl-C)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except QuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    handlers = {
        "generate": _generate,
        "stats": _stats,
        "storage": _storage,
        "cleanup": _cleanup,
        "bench": _bench,
        "batch": _batch,
        "sweep": _sweep,
        "calibrate": _calibrate,
    }
    return handlers.get(args.command, _monitor)(args, settings)


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from engine.app.resources import shared_ledger, start_up
    from engine.pipeline import generate

    try:
        picture = _read_upload(args.background_image)
        music, music_upload = _music(args.music)
    except QuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    request = Request(
        text=args.text, author=args.author, lang=args.lang, tts=args.tts, tld=args.tld, speed=args.speed,
        tier=args.tier, method=args.method, fallback=not args.no_fallback, aspect=args.aspect, preset=args.preset,
        captions=args.captions, caption_style=args.caption_style, subtitles=args.subtitles, motion=args.motion,
        background=args.background, background_image=picture, music=music, music_upload=music_upload,
        out=args.out,
    )  # fmt: skip
    try:
        if settings.broker_url:  # on the Celery workers
            result = _remote(request, settings)
        else:
            result = generate(request, settings, _print_waiting(), start_up(settings), shared_ledger(settings))
        code = EXIT_OK
    except QuoteError as exc:
        result, code = exc.result, exc.exit_code
        if result is None:
            print(f"error: {exc}", file=sys.stderr)
            return code
    if args.json:
        print(json.dumps(result_json(result), indent=2))
    else:
        print(_describe(result), file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


def _print_waiting():
    """Say on stderr when the render waits its turn for memory (at most once a second)."""
    last = [0.0]

    def on_event(event: object) -> None:

        if isinstance(event, StageEvent) and event.stage == "queued" and time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            print(event.message, file=sys.stderr, flush=True)

    return on_event


def _batch(args: argparse.Namespace, settings: Settings) -> int:
    from engine.app.resources import shared_ledger, start_up
    from engine.jobs.batch import MANIFEST, read_rows, run_batch
    from engine.pipeline import generate
    from engine.render.spec import encoder_threads

    try:
        rows = read_rows(args.file, settings=settings)
    except QuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    # As many rows at once as this process may use CPUs (a container's quota included); memory
    # decides too, through the ledger. Absolute: a worker on the queue writes where this names.
    workers = args.workers or encoder_threads(limit=64)
    out = args.out.resolve()
    if settings.broker_url:
        run = lambda request: _remote(request, settings)  # noqa: E731 - the workers make them
    else:
        store, ledger = start_up(settings), shared_ledger(settings)
        run = lambda request: generate(request, settings, store=store, ledger=ledger)  # noqa: E731
    bar = None
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm  # a progress bar on a terminal; one line per row otherwise

        bar = tqdm(total=len(rows), unit="video", file=sys.stderr)

    def progress(row, entry: dict[str, str]) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"row {row.number}: {entry['status']}")
        elif not args.json:
            why = f" ({entry['error']})" if entry.get("error") else ""
            print(f"row {row.number}: {entry['status']} {entry.get('output') or ''}{why}".rstrip(), flush=True)

    try:
        report = run_batch(rows, out, run, workers, progress)
    finally:
        if bar is not None:
            bar.close()
    summary = {**asdict(report), "manifest": str(out / MANIFEST), "exit_code": report.exit_code}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{report.made} made, {report.skipped} already made, {report.failed} failed of {report.rows} rows; "
              f"manifest: {out / MANIFEST}")  # fmt: skip
    return report.exit_code


def _remote(request: Request, settings: Settings) -> Result:
    from engine.jobs.remote import RemoteGeneration

    job = RemoteGeneration(request, settings).start()
    said = ""
    while not job.wait(0.5):
        view = job.snapshot()
        if view.stage == "queued" and view.message != said:  # its place in the queue, when it changes
            said = view.message
            print(view.message, file=sys.stderr, flush=True)
    view = job.snapshot()
    if view.error is not None:
        raise view.error
    if view.result is None:
        raise QuoteError("the worker finished without a result; please try again")
    return view.result


def _read_upload(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"{path.name} is over 10 MB; use a smaller background image")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the background image {path} ({exc.strerror})") from None


def _music(value: str) -> tuple[str, bytes | None]:
    """`--music`: a bed's name or none as it is, anything else a file to read."""
    if value in MUSIC_CHOICES:
        return value, None
    path = Path(value)
    if not path.exists():
        raise InvalidInput(f"--music {value!r} is neither a bed ({', '.join(MUSIC_CHOICES)}) nor a file")
    return "upload", read_music(path)


def _describe(result: Result) -> str:
    if result.status != "ok":
        lines = [f"error: {result.error}"]
    else:
        lines = [
            f"{result.output}",
            f"  {result.width}x{result.height}, {result.duration_s:.1f} s, {result.size_bytes / 1024:.0f} KB, "
            f"{result.video_kbps}k video / {result.audio_kbps}k audio",
            f"  tier {result.tier} ({result.tier_reason}); method {result.method}; speech {result.tts_engine}"
            + (f" (after {result.tts_fallback_reason})" if result.tts_fallback_reason else "")
            + (f", mastered to {result.loudness_lufs:.1f} LUFS" if result.loudness_lufs is not None else ""),
            f"  the seed's thresholds would have chosen {result.seed_tier}",
            f"  peak {result.peak_rss_mb:.0f} MB (predicted {result.predicted_peak_mb or 0:.0f} MB) of a "
            f"{result.budget_mb:.0f} MB render budget; {result.wall_s:.1f} s",
            *(f"  note: {note}" for note in result.notes),
        ]
    lines += [
        f"  attempt {a.method} at {a.tier}: {a.status}, peak {a.peak_rss_mb:.0f} MB, {a.wall_s:.1f} s"
        + (f" ({a.error})" if a.error else "")
        for a in result.attempts
    ]
    return "\n".join(lines)


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from engine.memory.reading import read_memory

    taken = 0
    try:
        while True:
            r = read_memory(settings.max_memory_mb)
            container = f"{r.container.used_mb:.0f}/{r.container.limit_mb:.0f} MB" if r.container else "no limit"
            print(
                f"{time.strftime('%H:%M:%S')}  available {r.available_mb:7.0f} MB (bound by {r.bound_by})  "
                f"host {r.host_available_mb:7.0f} MB  container {container}  app tree {r.app_rss_mb:5.0f} MB",
                flush=True,
            )
            taken += 1
            if args.count and taken >= args.count:
                return EXIT_OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from engine.app.resources import start_up
    from engine.history.stats import stats

    figures = stats(start_up(settings), args.window)
    if args.json:
        print(json.dumps(figures, indent=2))
        return EXIT_OK
    print(
        f"last {args.window}: {figures['total']} generations, {figures['succeeded']} ok, "
        f"{figures['failed']} failed, {figures['refused']} refused, {figures['running']} running"
    )
    print(
        f"  success rate {_pct(figures['success_rate'])}, fallback rate {_pct(figures['fallback_rate'])}, "
        f"outputs by method {figures['methods'] or '-'}"
    )
    for group in ("by_tier", "by_method"):
        for name, g in figures[group].items():
            peak = g["peak_rss_mb"]
            print(
                f"  {group[3:]} {name:9} {g['total']:4} runs  success {_pct(g['success_rate']):>6}  "
                f"peak median {_mb(peak['median'])} p95 {_mb(peak['p95'])}  "
                f"{g['s_per_video_s']['median'] or '-'} s per video second"
            )
    return EXIT_OK


def _storage(args: argparse.Namespace, settings: Settings) -> int:
    from engine.app.resources import start_up
    from engine.history.storage import storage_report

    report = storage_report(settings, start_up(settings))
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    memory = report["memory"]
    limit = memory["container_limit_mb"]
    print(f"outputs  {report['outputs']['count']} files, {report['outputs']['bytes'] / 1e6:.1f} MB")
    print(f"temp     {report['temp']['count']} files, {report['temp']['bytes'] / 1e6:.1f} MB")
    print(f"database {report['database_bytes'] / 1e6:.2f} MB; disk free {report['disk_free_bytes'] / 1e9:.1f} GB")
    print(
        f"memory   {memory['available_mb']:.0f} MB available (bound by {memory['bound_by']}), "
        f"app {memory['app_rss_mb']:.0f} MB, container limit {f'{limit:.0f} MB' if limit else 'none'}"
    )
    return EXIT_OK


def _cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from engine.app.resources import shared_store
    from engine.history.storage import cleanup

    report = cleanup(settings, shared_store(settings), older_than_days=args.older_than_days)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(
            f"removed {report.removed_outputs} outputs ({report.removed_bytes / 1e6:.1f} MB), "
            f"swept {report.swept_temp} temp folders, marked {report.interrupted} interrupted"
            + (
                f"; {report.unswept_temp} temp entries could not be removed (see the log)"
                if report.unswept_temp
                else ""
            )
        )
    return EXIT_OK


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.bench import run_bench, table

    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    from engine.app.resources import shared_ledger

    report = run_bench(
        settings, quick=args.quick, runs=args.runs, progress=say, ledger=shared_ledger(settings),
        speech_only=args.speech_only, end_to_end_only=args.end_to_end,
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(f"\nreport: {path}")
    return EXIT_OK


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    from engine.render.sweep import cell_lines, sweep
    from engine.validate import validate

    try:
        request = validate(Request(args.text, author=args.author), settings)
    except QuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    from engine.app.resources import shared_ledger

    cells = sweep(request.text, request.author, settings, args.out, shared_ledger(settings), progress=say)
    rows = [{**asdict(cell), "frame": str(frame)} for cell, frame in cells]
    if args.json:
        print(json.dumps({"cells": rows}, indent=2))
    else:
        print("\n".join(cell_lines(rows)))
        print(f"\nframes: {args.out}")
    return EXIT_OK


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from engine.memory.calibrate import calibrate, describe, write_prior
    from engine.memory.costs import PRIOR_FILE

    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    from engine.app.resources import shared_ledger

    prior = calibrate(settings, quick=args.quick, runs=args.runs, progress=say, ledger=shared_ledger(settings))
    path = write_prior(prior, args.out or PRIOR_FILE)
    if args.json:
        print(json.dumps(prior, indent=2))
    else:
        print(f"wrote {path}: {describe(prior)}")
    return EXIT_OK
