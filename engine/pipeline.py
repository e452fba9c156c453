"""One generation, end to end: validate, admit, speak, draw, render (with fallbacks), verify.

`generate()` is the one call that pages, the CLI and the HTTP routes make. It returns
a Result, or raises a QuoteError whose `.result` holds what was known (attempts, times).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from engine.errors import Busy, InvalidInput, NotEnoughMemory, QuoteError, RenderFailed, SpeechFailed
from engine.history import HistoryStore
from engine.history.storage import cleanup, over_quota
from engine.memory.admission import Gate, Waiting, default_need_mb
from engine.memory.costs import estimated_duration_s
from engine.memory.plan import attempt_budget_mb, method_chain, plan_tier
from engine.memory.reading import read_memory
from engine.memory.tiers import Tier, TierChoice, tier
from engine.models import (
    Attempt,
    AttemptEvent,
    MemorySample,
    ProgressEvent,
    QueuedJob,
    Request,
    Result,
    StageEvent,
)
from engine.render.ffmpeg import disk_full
from engine.render.isolation import run_isolated
from engine.render.job import RenderJob, encoder_threads
from engine.render.quality import measure
from engine.render.verify import verify
from engine.settings import Settings
from engine.speech import Speech, engines_for, speak
from engine.validate import validate
from engine.visuals.background import background
from engine.visuals.captions import caption_states, phrase_spans
from engine.visuals.card import draw_cards

log = logging.getLogger(__name__)

OnEvent = Callable[[ProgressEvent], None]
ERROR_KINDS = {
    Busy: "busy",
    InvalidInput: "invalid_input",
    NotEnoughMemory: "not_enough_memory",
    SpeechFailed: "speech_failed",
    RenderFailed: "render_failed",
}


@dataclass
class _Run:
    """What one generation has learned so far; becomes the Result, or the error's `.result`."""

    generation_id: str
    started: float = field(default_factory=time.monotonic)
    fields: dict = field(default_factory=dict)
    stage_s: dict[str, float] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def result(self, status: str, error: str | None = None) -> Result:
        peak = max((a.peak_rss_mb for a in self.attempts), default=0.0)
        return Result(
            generation_id=self.generation_id,
            status=status,
            error=error,
            peak_rss_mb=peak,
            wall_s=round(self.elapsed(), 3),
            stage_s=dict(self.stage_s),
            attempts=tuple(self.attempts),
            timeline=tuple(self.timeline),
            **self.fields,
        )


def generate(
    request: Request,
    settings: Settings,
    on_event: OnEvent | None = None,
    store: HistoryStore | None = None,
    gate: Gate | None = None,
    job: QueuedJob | None = None,
) -> Result:
    """Make one video; recorded in `store` (when given) whatever the outcome. With a `gate`,
    the render waits its turn until its predicted peak fits the memory free. `job` ties the
    history row to the queued job it ran for, on a worker."""
    emit = on_event or (lambda _event: None)
    run = _Run(uuid.uuid4().hex)
    job_dir = settings.temp_dir / run.generation_id
    history = _History(store, run.generation_id)
    history.begin(request, job)
    try:
        with _stage(run, "validate"):
            request = validate(request, settings)
        choice = _admit(run, request, settings, emit, store)
        history.admitted(run.fields)
        job_dir.mkdir(parents=True, exist_ok=True)
        emit(StageEvent("speech", "making the speech"))
        with _stage(run, "speech"):
            speech = _speech(request, settings, job_dir)
        run.fields.update(tts_engine=speech.engine, tts_fallback_reason=speech.fallback_reason)
        with _admitted(gate, request, choice, emit):
            output = _render_chain(run, request, speech, choice, settings, job_dir, emit)
        result = replace(run.result("ok"), output=output)
        history.finish(result)
        if store is not None and over_quota(settings):
            cleanup(settings, store, keep=[output])
        emit(StageEvent("done", f"done in {run.elapsed():.1f} s"))
        return result
    except QuoteError as exc:
        _fail(exc, ERROR_KINDS.get(type(exc), "error"), run, history, emit)
        raise
    except OSError as exc:  # our own writes (speech, cards, the output): a full disk, a lost folder
        why = exc.strerror or str(exc)
        full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        failure = RenderFailed(disk_full(why) if full else f"could not write the video's files ({why}); check DATA_DIR")
        _fail(failure, "storage", run, history, emit)
        raise failure from exc
    except Exception as exc:
        history.finish(run.result("error", f"internal error: {type(exc).__name__}: {exc}"), "internal")
        raise
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _fail(exc: QuoteError, kind: str, run: _Run, history: _History, emit: OnEvent) -> None:
    """Attach what the generation knew to the error, record it, and tell the watcher."""
    exc.result = run.result("error", str(exc))
    history.finish(exc.result, kind)
    emit(StageEvent("error", str(exc)))


class _History:
    """Writes to the store that never break a generation: a failed write is logged, not raised."""

    def __init__(self, store: HistoryStore | None, generation_id: str) -> None:
        self.store = store
        self.generation_id = generation_id
        self.started = False

    def begin(self, request: Request, job: QueuedJob | None) -> None:
        if self.store is not None:
            self.started = self._safely(self.store.begin, self.generation_id, request, job)

    def admitted(self, fields: dict) -> None:
        """The tier chosen, on the running row: a run that never finishes still shows it."""
        if self.store is not None and self.started:
            chosen = {k: fields[k] for k in ("tier", "tier_reason", "available_mb", "app_rss_mb")}
            self._safely(self.store.admitted, self.generation_id, chosen)

    def finish(self, result: Result, error_kind: str | None = None) -> None:
        if self.store is not None and self.started:
            self._safely(self.store.finish, result, error_kind)

    @staticmethod
    def _safely(write, *args) -> bool:
        try:
            write(*args)
            return True
        except SQLAlchemyError:
            log.exception("could not write the history; the generation goes on")
            return False


@contextmanager
def _stage(run: _Run, stage: str) -> Iterator[None]:
    """Add the time spent inside to the stage's total (a stage may run more than once)."""
    started = time.monotonic()
    try:
        yield
    finally:
        run.stage_s[stage] = round(run.stage_s.get(stage, 0.0) + time.monotonic() - started, 3)


def _admit(run: _Run, request: Request, settings: Settings, emit: OnEvent, store: HistoryStore | None) -> TierChoice:
    reading = read_memory(settings.max_memory_mb)
    run.fields.update(available_mb=round(reading.available_mb, 1), app_rss_mb=round(reading.app_rss_mb, 1))
    if reading.available_mb < settings.min_required_memory_mb:
        raise NotEnoughMemory(reading.available_mb, settings.min_required_memory_mb)
    choice = plan_tier(request, settings, reading, store)
    run.fields.update(tier=choice.tier.name, tier_asked=choice.asked, tier_reason=choice.reason)
    if choice.prediction is not None:
        seconds = estimated_duration_s(request.text)
        run.fields.update(
            predicted_peak_mb=choice.prediction.p95_peak_mb, predicted_wall_s=choice.prediction.wall_s(seconds)
        )
    emit(StageEvent("admit", f"tier {choice.tier.name}: {choice.reason}"))
    return choice


def _admitted(gate: Gate | None, request: Request, choice: TierChoice, emit: OnEvent):
    if gate is None:
        return nullcontext()
    first = method_chain(request)[0]
    need = choice.prediction.p95_peak_mb if choice.prediction else default_need_mb(first, choice.tier.name)

    def waiting(state: Waiting) -> None:
        free = max(0.0, state.free_mb)
        emit(StageEvent("queued", f"position {state.position}, waited {state.waited_s:.0f} s "
                                  f"(needs {state.need_mb:.0f} MB, {free:.0f} MB free)"))  # fmt: skip

    return gate.admit(need, waiting)


def _speech(request: Request, settings: Settings, job_dir: Path) -> Speech:
    engines = engines_for(request.tts, tld=request.tld, slow=request.slow)
    spans = phrase_spans(request.text) if request.captions else None
    speech = speak(request.text, request.lang, engines, job_dir, spans)
    if speech.duration_s > settings.max_video_duration_s:
        raise InvalidInput(
            f"the speech lasts {speech.duration_s:.0f} s, longer than the {settings.max_video_duration_s:.0f} s "
            "limit (MAX_VIDEO_DURATION); shorten the quote"
        )
    return speech


class _Pictures:
    """The cards of one generation, drawn once per frame size: the plain card, and with
    captions one card per phrase with its timing."""

    def __init__(self, run: _Run, request: Request, speech: Speech, job_dir: Path, emit: OnEvent) -> None:
        self.run, self.request, self.job_dir, self.emit = run, request, job_dir, emit
        self.states = caption_states(request.text, speech) if request.captions else []
        self.drawn: dict[tuple[int, int], tuple[Path, tuple[tuple[str, float, float], ...]]] = {}

    def for_size(self, size: tuple[int, int]) -> tuple[Path, tuple[tuple[str, float, float], ...]]:
        if size not in self.drawn:
            self.emit(StageEvent("card", f"drawing {1 + len(self.states)} card(s) at {size[0]}x{size[1]}"))
            highlights = [None, *((s.first, s.last) for s in self.states)]
            with _stage(self.run, "card"):
                paths = draw_cards(self.request.text, self.request.author, size, highlights, self.job_dir,
                                   background(self.request.background, self.request.background_image))  # fmt: skip
            captions = tuple((str(p), s.start_s, s.end_s) for p, s in zip(paths[1:], self.states, strict=True))
            self.drawn[size] = (paths[0], captions)
        return self.drawn[size]


def _render_chain(
    run: _Run, request: Request, speech: Speech, choice: TierChoice, settings: Settings, job_dir: Path, emit: OnEvent
) -> Path:
    pictures = _Pictures(run, request, speech, job_dir, emit)
    for number, method in enumerate(method_chain(request), start=1):
        used = tier("emergency", settings) if method == "emergency" else choice.tier
        pictures.for_size(used.size(request.aspect))  # drawn before the render stage is announced
        emit(StageEvent("render", f"attempt {number}: {method} at {used.name} tier"))
        attempt_dir = job_dir / f"attempt-{number}-{method}"
        attempt_dir.mkdir()
        try:
            output = _attempt(run, request, speech, used, method, pictures, attempt_dir, settings, emit)
            if output is not None:
                return _deliver(output, request.out or settings.outputs_dir / f"quote-{run.generation_id}.mp4")
        finally:
            shutil.rmtree(attempt_dir, ignore_errors=True)
    reasons = "; ".join(f"{a.method}: {a.error}" for a in run.attempts)
    raise RenderFailed(f"every render method failed ({reasons}); try a lower tier or a shorter quote")


def _attempt(
    run: _Run, request: Request, speech: Speech, used: Tier, method: str, pictures: _Pictures,
    attempt_dir: Path, settings: Settings, emit: OnEvent,
) -> Path | None:  # fmt: skip
    """Run one method in isolation and verify it; the verified file, or None after recording why."""
    budget = attempt_budget_mb(read_memory(settings.max_memory_mb).available_mb)
    duration = min(speech.duration_s, used.max_duration_s or speech.duration_s)
    width, height = used.size(request.aspect)
    card, captions = pictures.for_size((width, height))
    captions = () if method == "emergency" else captions  # the last resort: no captions, no motion
    job = RenderJob(
        method=method, card_path=str(card), audio_path=str(speech.path),
        out_path=str(attempt_dir / "out.mp4"), temp_dir=str(attempt_dir),
        width=width, height=height, fps=used.fps, video_kbps=used.video_kbps, audio_kbps=used.audio_kbps,
        duration_s=round(duration, 3), threads=encoder_threads(), captions=captions,
        motion=request.motion and method == "moviepy", crash=method in request.crash_methods,
    )  # fmt: skip
    offset = run.elapsed()

    def on_sample(t_s: float, rss_mb: float) -> None:
        run.timeline.append((round(offset + t_s, 3), round(rss_mb, 1)))
        emit(MemorySample(offset + t_s, rss_mb, budget, method))

    with _stage(run, "render"):
        isolated = run_isolated(job, budget, on_sample=on_sample)
    status, error = isolated.status, isolated.error
    probe = None
    if status == "ok":
        try:
            with _stage(run, "verify"):
                probe = verify(Path(job.out_path), width, height, duration)
        except RenderFailed as exc:
            status, error = "unverified", str(exc)
    attempt = Attempt(method, used.name, status, error, isolated.peak_rss_mb, isolated.wall_s, round(budget, 1))
    run.attempts.append(attempt)
    emit(AttemptEvent(attempt))
    if probe is None:
        log.warning("attempt %s at %s failed: %s", method, used.name, error)
        return None
    if method == "emergency":
        run.fields["tier_reason"] = (
            f"emergency fallback, 480p at most {used.max_duration_s:.0f} s (asked: {run.fields['tier_reason']})"
        )
    with _stage(run, "quality"):
        at = min(1.0, duration / 2)
        shown = next((Path(c) for c, start, end in job.captions if start <= at < end), card)
        quality = measure(Path(job.out_path), shown, at)
    run.fields.update(
        ssim=quality.ssim if quality else None, psnr_db=quality.psnr_db if quality else None,
        method=method, tier=used.name, width=probe.width, height=probe.height,
        duration_s=round(probe.duration_s, 3), size_bytes=probe.size_bytes,
        video_kbps=used.video_kbps, audio_kbps=used.audio_kbps,
        captions=bool(job.captions), motion=job.motion, notes=_notes(request, job, speech),
    )  # fmt: skip
    return Path(job.out_path)


def _notes(request: Request, job: RenderJob, speech: Speech) -> tuple[str, ...]:
    """What the delivered video leaves out of what was asked, and why."""
    notes = []
    if request.motion and not job.motion:
        notes.append(f"motion left out: the {job.method} fallback renders a still card (captions kept)")
    if request.captions and not job.captions:
        notes.append(f"captions left out: the {job.method} render has none")
    if job.duration_s < speech.duration_s - 0.01:
        notes.append(f"cut to {job.duration_s:.0f} s: the {job.method} render is at most that long")
    return tuple(notes)


def _deliver(rendered: Path, target: Path) -> Path:
    """Move the verified file into place atomically: a temp name beside the target, then rename."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        shutil.copyfile(rendered, partial) if _other_device(rendered, target.parent) else os.replace(rendered, partial)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RenderFailed(
            f"could not write the video to {target} ({exc.strerror}); check the folder and free disk"
        ) from None
    return target


def _other_device(a: Path, folder: Path) -> bool:
    return a.stat().st_dev != folder.stat().st_dev
