"""One generation, end to end: validate, speak, plan, admit, draw, render (with fallbacks), verify.

`generate()` is the one call that pages, the CLI and the HTTP routes make. It returns
a Result, or raises a QuoteError whose `.result` holds what was known (attempts, times).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

from engine.audio.loudness import Loudness
from engine.audio.master import Carrier, carrier, master, relevel
from engine.audio.mix import mix
from engine.audio.music import Music, music_file
from engine.errors import HistoryUnavailable, InvalidInput, QuoteError, RenderFailed
from engine.history import HistoryStore
from engine.history.storage import cleanup, over_quota, remove_tree
from engine.memory.costs import CostModel, estimated_duration_s
from engine.memory.ledger import Grant, Ledger, Need, Waiting, attempt_budget_mb
from engine.memory.plan import Plan, Step, check_floor, cost_model, make_plan
from engine.memory.reading import read_memory
from engine.memory.tiers import frame_rate
from engine.memory.voice import voice_need, voice_room
from engine.models import (
    Attempt,
    AttemptEvent,
    MemorySample,
    ProgressEvent,
    QueueDelivery,
    Request,
    Result,
    StageEvent,
)
from engine.render import still_loop
from engine.render.deliver import cover, deliver, with_subtitles
from engine.render.ffmpeg import disk_full, ffmpeg_exe
from engine.render.isolation import run_isolated
from engine.render.quality import Quality, measure
from engine.render.spec import RenderSpec, coding, encoder_threads
from engine.render.still_loop import Frames
from engine.render.verify import verify
from engine.settings import Settings
from engine.speech import Speech, SpeechOrder, engines_for, speak
from engine.speech.saved_voice import is_saved
from engine.validate import validate
from engine.visuals.background import background
from engine.visuals.captions import CaptionState, caption_states
from engine.visuals.card import Painter
from engine.visuals.subtitles import cues, srt, vtt

log = logging.getLogger(__name__)

OnEvent = Callable[[ProgressEvent], None]
Budget = Callable[[], float]
# Work done beside a generation's main line while it waits on a process: the card and the music
# while the speech is made (alone on the host), and what a process does once (`_warm`); the card's
# files during the render, the quality measure during the mux and the check. Shared by every
# generation here.
_BESIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="beside")


@dataclass
class _Run:
    """What one generation has learned so far; becomes the Result, or the error's `.result`."""

    known: Result
    started: float = field(default_factory=time.monotonic)
    stage_s: dict[str, float] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    _stages: threading.Lock = field(default_factory=threading.Lock)  # the card is timed on another thread

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def learn(self, **changes: Any) -> None:
        self.known = replace(self.known, **changes)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent inside to the stage's total (a stage may run more than once)."""
        started = time.monotonic()
        try:
            yield
        finally:
            with self._stages:
                self.stage_s[name] = round(self.stage_s.get(name, 0.0) + time.monotonic() - started, 3)

    def result(self, status: str, error: str | None = None) -> Result:
        return replace(
            self.known, status=status, error=error,
            peak_rss_mb=max((a.peak_rss_mb for a in self.attempts), default=0.0),
            wall_s=round(self.elapsed(), 3), stage_s=dict(self.stage_s),
            attempts=tuple(self.attempts), timeline=tuple(self.timeline),
        )  # fmt: skip


def generate(
    request: Request,
    settings: Settings,
    on_event: OnEvent | None = None,
    store: HistoryStore | None = None,
    ledger: Ledger | None = None,
    delivery: QueueDelivery | None = None,
    model: CostModel | None = None,
) -> Result:
    """Make one video; recorded in `store` (when given) whatever the outcome. With a `ledger`,
    the render waits its turn on this host until its predicted peak fits the memory free.
    `delivery` ties the history row to the queued job it ran for, on a worker."""
    emit = on_event or (lambda _event: None)
    run = _Run(Result(
        uuid.uuid4().hex, "running", tier_asked=request.tier, aspect=request.aspect, speed=request.speed,
        preset=request.preset, caption_style=request.caption_style,
    ))  # fmt: skip
    work_dir = settings.temp_dir / run.known.generation_id
    history = _History(store, run.known.generation_id)
    history.begin(request, delivery)
    pictures: _Pictures | None = None
    chosen: list[Future[Music | None]] = []
    warming: list[Future[None]] = []
    try:
        with run.stage("validate"):
            request = validate(request, settings)
        run.learn(aspect=request.aspect, music=request.music)
        model = model or cost_model(store)
        headroom = ledger.headroom_mb() if ledger is not None else read_memory(settings.max_memory_mb).available_mb
        capacity = attempt_budget_mb(headroom)
        reading = read_memory(settings.max_memory_mb)
        run.learn(available_mb=round(reading.available_mb, 1), app_rss_mb=round(reading.app_rss_mb, 1),
                  budget_mb=round(capacity, 1), tier_policy=settings.tier_policy)  # fmt: skip
        check_floor(settings, model, capacity, headroom)
        plan = make_plan(request, settings, model, capacity, reading.available_mb, estimated_duration_s(request.text))
        _planned(run, plan)
        history.admitted(run.known)
        emit(StageEvent("admit", f"tier {plan.tier.name}: {plan.reason}"))
        work_dir.mkdir(parents=True, exist_ok=True)
        pictures = _Pictures(run, plan, work_dir, emit)
        alone = _alone(ledger)
        if alone:  # drawn while the speech is made; else once admitted, in _render_chain
            pictures.draw(plan.steps()[0].size)
        choose_music = partial(music_file, request.music, request.music_upload, settings.data_dir, work_dir)
        if alone and request.music != "none":  # made (a bed's first use: 0.4 s) or measured (an upload)
            chosen.append(_BESIDE.submit(choose_music))
        warming.append(_BESIDE.submit(_warm))
        emit(StageEvent("speech", "making the speech"))
        with run.stage("speech"):
            speech = _speech(run, plan, settings, work_dir, emit, ledger, model)
        run.learn(tts_engine=speech.engine, tts_fallback_reason=speech.fallback_reason,
                  tts_peak_mb=speech.peak_rss_mb or None)  # fmt: skip
        first = plan.steps()[0]  # mastered for the encode the video is planned with
        carried = carrier(first.tier.audio_kbps, coding(first.method, request.music != "none") == "one")
        with run.stage("master"):
            mastered = master(speech, work_dir / "speech-mastered.wav", carried)
        speech = mastered.speech
        pictures.spoken(speech)
        music = chosen[0].result() if chosen else choose_music()
        if music is not None:
            emit(StageEvent("music", "mixing the music under the voice"))
            with run.stage("music"):
                mastered = replace(mix(speech, music, work_dir / "speech-music.wav", carried), speech=mastered.speech)
        delivered = carried.delivered(mastered.loudness)
        run.learn(loudness_lufs=delivered.integrated_lufs, true_peak_dbtp=delivered.true_peak_dbtp)
        path = work_dir / "speech-music.wav" if music is not None else speech.path
        sound = _Sound(run, path, music is not None, mastered.loudness, carried)
        plan = plan.spoken(speech.duration_s)
        with _admission(ledger, plan, emit) as grant:
            if grant is not None:
                run.stage_s["wait"] = round(grant.waited_s, 3)
                plan = plan.stepped_down(grant.index, grant.stepped_down or "")
                _planned(run, plan)
                pictures.replan(plan)
            budget = _budget(settings, grant)
            output = _render_chain(run, plan, speech, sound, settings, work_dir, emit, budget, pictures)
        result = replace(run.result("ok"), output=output)
        history.finish(result)
        if store is not None and over_quota(settings):
            try:
                cleanup(settings, store, keep=[output, *([result.cover] if result.cover else []), *result.subtitles])
            except (HistoryUnavailable, OSError):  # the video is made; the quota is enforced at the next start or video
                log.exception("could not enforce MAX_STORAGE_MB; the video is delivered")
        emit(StageEvent("done", f"done in {run.elapsed():.1f} s"))
        return result
    except QuoteError as exc:
        _fail(exc, exc.kind, run, history, emit)
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
        if pictures is not None:
            pictures.close()
        _settle([*chosen, *warming])  # no thread of ours outlives the generation, nor its ffmpeg
        remove_tree(work_dir)


def _warm() -> None:
    """What mastering would otherwise wait for, done while the speech is made: imageio-ffmpeg's check
    of its binary (`ffmpeg -version`, 20 ms, the first time in a process: it keeps the answer). A
    failure is left for the call that needs it to report."""
    with suppress(RenderFailed):
        ffmpeg_exe()


def _alone(ledger: Ledger | None) -> bool:
    """Nothing else renders or waits on this host, so the card may be drawn beside the speech: its
    drawing (22 MB at 1080p) is outside every reservation. Under load it is drawn once admitted, as
    the render is: four requesters drawing before admission pushed the 512 MB soak out of memory."""
    if ledger is None:
        return True
    now = ledger.view()
    return now.running == 0 and now.waiting == 0


def _budget(settings: Settings, grant: Grant | None) -> Budget:
    """The watchdog's budget for the next attempt: what admission granted, else what is available."""
    if grant is not None:
        return lambda: grant.budget_mb
    return lambda: attempt_budget_mb(read_memory(settings.max_memory_mb).available_mb)


def _planned(run: _Run, plan: Plan) -> None:
    run.learn(
        tier=plan.tier.name, tier_reason=plan.reason, seed_tier=plan.seed_tier,
        predicted_peak_mb=plan.predicted.peak_mb, predicted_wall_s=plan.predicted.wall_s(plan.duration_s),
        prediction_source=plan.predicted.source,
    )  # fmt: skip


def _fail(exc: QuoteError, kind: str, run: _Run, history: _History, emit: OnEvent) -> None:
    """Attach what the generation knew to the error, record it, and tell the watcher."""
    exc.result = replace(run.result("error", str(exc)), error_kind=kind)
    history.finish(exc.result, kind)
    emit(StageEvent("error", str(exc)))


class _History:
    """Writes to the store that never break a generation: a failed write is logged, not raised."""

    def __init__(self, store: HistoryStore | None, generation_id: str) -> None:
        self.store = store
        self.generation_id = generation_id
        self.started = False

    def begin(self, request: Request, delivery: QueueDelivery | None) -> None:
        if self.store is not None:
            self.started = self._safely(self.store.begin, self.generation_id, request, delivery)

    def admitted(self, known: Result) -> None:
        """The tier chosen, on the running row: a run that never finishes still shows it."""
        if self.store is not None and self.started:
            self._safely(self.store.admitted, known)

    def finish(self, result: Result, error_kind: str | None = None) -> None:
        if self.store is not None and self.started:
            self._safely(self.store.finish, result, error_kind)

    @staticmethod
    def _safely(write: Callable[..., object], *args: object) -> bool:
        try:
            write(*args)
            return True
        except HistoryUnavailable:
            log.exception("could not write the history; the generation goes on")
            return False


def _admission(ledger: Ledger | None, plan: Plan, emit: OnEvent):
    if ledger is None:
        return nullcontext(None)

    def waiting(state: Waiting) -> None:
        expected = "" if state.expected_wait_s is None else f", room expected in {state.expected_wait_s:.0f} s"
        emit(StageEvent("queued", f"waiting for memory: position {state.position}, {state.running} render(s) "
                                  f"running, waited {state.waited_s:.0f} s (needs {state.need_mb:.0f} MB, "
                                  f"{max(0.0, state.free_mb):.0f} MB free{expected})"))  # fmt: skip

    return ledger.admit(plan.needs(), waiting)


def _speech(
    run: _Run, plan: Plan, settings: Settings, work_dir: Path, emit: OnEvent, ledger: Ledger | None, model: CostModel
) -> Speech:
    """Speak the quote with the chain the request asked for; the neural voice takes its turn for
    memory like a render, and its memory is on the generation's timeline."""
    request = plan.request
    offset = run.elapsed()

    @cache
    def need() -> Need:  # asked when the neural voice speaks: "is it saved" reads package versions (45 ms)
        return voice_need(model, len(request.text), is_saved(settings.models_dir))

    def on_sample(t_s: float, rss_mb: float) -> None:
        run.timeline.append((round(offset + t_s, 3), round(rss_mb, 1)))
        emit(MemorySample(offset + t_s, rss_mb, need().need_mb, "piper"))

    def waiting(state: Waiting) -> None:
        emit(StageEvent("queued", f"the neural voice waits for memory: {state.running} render(s) running, "
                                  f"needs {state.need_mb:.0f} MB, {max(0.0, state.free_mb):.0f} MB free"))  # fmt: skip

    reserve = voice_room(need, ledger, settings.max_memory_mb, waiting)
    engines = engines_for(
        request.tts or settings.tts_engine, reserve, settings.models_dir, request.tld, on_sample=on_sample
    )
    order = SpeechOrder(request.text, request.lang, work_dir, plan.quote.phrase_spans(), request.captions,
                        request.speed)  # fmt: skip
    speech = speak(order, engines)
    if speech.saved_voice:
        # This run saved the voice first: no measure of what it needs from now on (the history's
        # figure teaches the cost model that); its memory stays on the timeline.
        speech = replace(speech, peak_rss_mb=0.0)
    if speech.duration_s > settings.max_video_duration_s:
        raise InvalidInput(
            f"the speech lasts {speech.duration_s:.0f} s, longer than the {settings.max_video_duration_s:.0f} s "
            "limit (MAX_VIDEO_DURATION); shorten the quote"
        )
    return speech


class _Pictures:
    """The cards of one generation, laid out once per frame size: the plain card, and with
    captions each state's card, drawn when a render asks for it (as raw frames for the FFmpeg
    method, as PNG files for MoviePy's child).

    The plain card at the plan's size is drawn, and its PNG and cover written, on a thread while
    the speech is made and mastered (both wait on processes) when the generation is alone on the
    host (`_alone`), so the render starts at once; either way the render holds no drawing in
    memory: a still card keeps only its raw frame (3 MB at 1080p)."""

    def __init__(self, run: _Run, plan: Plan, work_dir: Path, emit: OnEvent) -> None:
        self.run, self.plan, self.work_dir, self.emit = run, plan, work_dir, emit
        self.states: list[CaptionState] = []
        self.painters: dict[tuple[int, int], Painter] = {}
        self.files: dict[tuple[int, int], tuple[str, ...]] = {}
        self.written: dict[tuple[int, int], Future[Path]] = {}
        self.still: dict[tuple[int, int], memoryview] = {}

    def spoken(self, speech: Speech) -> None:
        """The caption states, once the speech has timed them."""
        if self.plan.request.captions:
            self.states = caption_states(self.plan.quote, speech, self.plan.request.caption_style)

    def draw(self, size: tuple[int, int]) -> None:
        """Start drawing the plain card at `size`, with its files, on a thread (once a size)."""
        if size not in self.written:
            self.written[size] = _BESIDE.submit(self._draw, size)

    def card(self, size: tuple[int, int]) -> Path:
        """The plain card at `size` as a PNG (MoviePy's still video, the quality reference), drawn."""
        self.draw(size)
        return self.written[size].result()

    def cover(self, size: tuple[int, int]) -> Path:
        return self.card(size).with_suffix(".jpg")

    def replan(self, plan: Plan) -> None:
        """Admission stepped the plan down: let go of what was drawn for sizes it no longer renders."""
        self.plan = plan
        sizes = {step.size for step in plan.steps()}
        for size in list(self.written):
            if size not in sizes:
                wait([self.written[size]])
                self.painters.pop(size, None)
                self.still.pop(size, None)

    def close(self) -> None:
        """Wait for the drawing on the thread: no file may land in a folder being removed. A drawing
        that failed is logged, so that one no one waited for (the generation failed first) is not lost."""
        wait(self.written.values())
        for future in self.written.values():
            if not future.cancelled() and future.exception() is not None:
                log.warning("a card drawn beside the generation failed: %s", future.exception())

    def painter(self, size: tuple[int, int]) -> Painter:
        if size not in self.painters:
            request = self.plan.request
            self.painters[size] = Painter(self.plan.quote, size, background(request.background,
                                                                             request.background_image))  # fmt: skip
        return self.painters[size]

    def captions(self, size: tuple[int, int], files: bool) -> tuple[tuple[str, float, float], ...]:
        """The caption states' (card, start, end); with `files`, each card drawn to a PNG (MoviePy
        reads them), else no file: the FFmpeg method draws them as it encodes (`frames`)."""
        if files and size not in self.files:
            self.emit(StageEvent("card", f"drawing {len(self.states)} caption cards at {size[0]}x{size[1]}"))
            with self.run.stage("card"):
                self.files[size] = tuple(str(self.shown(size, index)) for index in range(len(self.states)))
        names = self.files.get(size) if files else None
        return tuple((names[i] if names else "", s.start_s, s.end_s) for i, s in enumerate(self.states))

    def frames(self, size: tuple[int, int], captions: bool) -> Frames:
        """The cards as raw frames for the FFmpeg method: the caption states', or the still card."""
        self.card(size)
        if not captions:
            still = self.still.get(size) or self.painter(size).frame(None)
            return lambda _index: still
        painter = self.painter(size)
        last: list[Any] = [None, None]  # the state drawn last, and its frame (valid until the next draw)

        def draw(index: int) -> bytes | memoryview:
            # A state that began between keyframes is encoded again as its first keyframe: not drawn again.
            if last[0] != index:
                last[:] = [index, painter.frame(self.states[index].highlight)]
            return last[1]

        return draw

    def measure(
        self, video: Path, size: tuple[int, int], index: int | None, at_s: float, picture: int | None = None
    ) -> Quality | None:
        """The video's picture quality at `at_s` against the card shown then (state `index`'s, or
        the plain card), drawn here if need be, on the pool; with `picture`, of that picture of a
        raw H.264 stream (engine.render.quality.measure)."""
        if index is None:
            return measure(video, self.card(size), at_s, picture)
        quality = measure(video, self.shown(size, index, "BMP"), at_s, picture)
        self.painter(size).forget("dim")  # drawn again for the reference: a fallback's files draw it anew
        return quality

    def shown(self, size: tuple[int, int], index: int, kind: str = "PNG") -> Path:
        """State `index`'s card as a PNG file (what MoviePy's child reads), or as a BMP: the quality
        measure's reference, the same pixels, written in 11 ms where a PNG took 79 ms at 1080x1920
        (measured), and read quicker. A PNG of it already drawn serves either."""
        png = self.work_dir / f"card-{size[0]}x{size[1]}-{index:04d}.png"
        path = png if kind == "PNG" or png.exists() else png.with_suffix(".bmp")
        if not path.exists():
            picture = self.painter(size).picture(self.states[index].highlight)
            picture.save(path, format=kind, **({"compress_level": 1} if kind == "PNG" else {}))
        return path

    def _draw(self, size: tuple[int, int]) -> Path:
        with self.run.stage("card"):
            painter = self.painter(size)
            image = painter.picture(None)
            png = self.work_dir / f"card-{size[0]}x{size[1]}.png"
            image.save(png, format="PNG", compress_level=1)
            cover(image, png.with_suffix(".jpg"))
            steps = [step for step in self.plan.steps() if step.size == size]
            if any(step.captions for step in steps):  # the states are drawn from the dim card, not this one (6 MB)
                painter.forget("plain")
            else:  # nothing more to draw: keep the still card's frame where a render takes one, not the images
                if any(step.method in still_loop.METHODS for step in steps):
                    self.still[size] = painter.frame(None)
                del self.painters[size]
            return png


class _Sound:
    """What the video carries (the mastered speech, or its mix with music), mastered for the AAC
    bitrate the video is planned at. A render at another bitrate (a fallback, a step down) gets it
    written again for that bitrate's encode (`master.carrier`), so that its true peak stays under
    -1 dBTP and its loudness at the target."""

    def __init__(self, run: _Run, path: Path, stereo: bool, loudness: Loudness, carried: Carrier) -> None:
        self.run, self.stereo = run, stereo
        self.first = carried
        self.versions: dict[Carrier, tuple[Path, Loudness]] = {carried: (path, loudness)}

    def carried_at(self, audio_kbps: int, method: str) -> tuple[Path, Loudness]:
        """The sound for `method`'s encode at `audio_kbps`, and its loudness: integrated as that encode
        delivers it (the file is aimed higher by what the encode takes away), and the file's true peak,
        before the encode; RenderFailed if it cannot be written."""
        need = carrier(audio_kbps, coding(method, self.stereo) == "one")
        if need not in self.versions:
            path, loudness = self.versions[self.first]
            out = path.with_name(f"{path.stem}-at-{audio_kbps}k.wav")
            with self.run.stage("master"):
                self.versions[need] = (out, relevel(path, loudness, need, out))
        path, written = self.versions[need]
        return path, need.delivered(written)


def _render_chain(
    run: _Run, plan: Plan, speech: Speech, sound: _Sound, settings: Settings, work_dir: Path, emit: OnEvent,
    budget: Budget, pictures: _Pictures,
) -> Path:  # fmt: skip
    """Try the plan's steps in order; the first verified video is delivered with the files beside it.
    `speech` times the captions; `sound` is what the video carries (the speech, or the mix with music)."""
    request = plan.request
    for number, step in enumerate(plan.steps(), start=1):
        pictures.card(step.size)  # drawn before the render stage is announced
        emit(StageEvent("render", f"attempt {number}: {step.method} at {step.tier.name} tier"))
        attempt_dir = work_dir / f"attempt-{number}-{step.method}"
        attempt_dir.mkdir()
        try:
            output = _attempt(run, plan, speech, sound, step, pictures, attempt_dir, emit, budget)
            if output is not None:
                target = (request.out or settings.outputs_dir / f"quote-{run.known.generation_id}.mp4").resolve()
                with run.stage("deliver"):
                    return _deliver(run, plan, step, speech, output, pictures.cover(step.size), target)
        finally:
            remove_tree(attempt_dir)
    reasons = "; ".join(f"{a.method}: {a.error}" for a in run.attempts)
    raise RenderFailed(f"every render method failed ({reasons}); try a lower tier or a shorter quote")


def _deliver(run: _Run, plan: Plan, step: Step, speech: Speech, video: Path, cover: Path, target: Path) -> Path:
    """The video, its cover and (when asked) its subtitles, made beside the render and put in place
    together; subtitles end where the video does (the emergency render may cut it). The FFmpeg methods
    muxed the track in; MoviePy's video gets it here, and is verified again."""
    request, made = plan.request, video.parent
    files = {cover: target.with_suffix(".jpg")}
    subtitles: tuple[Path, ...] = ()
    stale = [target.with_suffix(".srt"), target.with_suffix(".vtt")]  # an earlier video's, at a reused --out
    if request.subtitles:
        if step.method not in still_loop.METHODS:  # their render muxed the track in (_attempt)
            cued = _cue_files(plan, speech, step, made)
            video = with_subtitles(video, cued, made / "subtitled.mp4", request.lang)
            verify(video, *step.size, step.duration_s, subtitles=True)
        subtitles, stale = tuple(stale), []
        files |= {made / "cues.srt": subtitles[0], made / "cues.vtt": subtitles[1]}
    deliver({video: target, **files})
    for old in stale:
        old.unlink(missing_ok=True)
    run.learn(cover=target.with_suffix(".jpg"), subtitles=subtitles)
    return target


def _cue_files(plan: Plan, speech: Speech, step: Step, folder: Path) -> Path:
    """The subtitles' cues as `cues.srt` and `cues.vtt` in `folder`, ending where `step`'s video does
    (the emergency render may cut it); the SRT's path."""
    found = cues(plan.quote, speech, until_s=step.duration_s)
    (folder / "cues.vtt").write_text(vtt(found), encoding="utf-8")
    path = folder / "cues.srt"
    path.write_text(srt(found), encoding="utf-8")
    return path


def _attempt(
    run: _Run, plan: Plan, speech: Speech, sound: _Sound, step: Step, pictures: _Pictures, attempt_dir: Path,
    emit: OnEvent, budget: Budget,
) -> Path | None:  # fmt: skip
    """Run one step in isolation and verify it; the verified file, or None after recording why."""
    request, used, method, duration = plan.request, step.tier, step.method, step.duration_s
    limit = budget()
    width, height = step.size
    files = method not in still_loop.METHODS  # MoviePy's child reads the cards from PNG files
    card = pictures.card(step.size)
    cards = pictures.captions(step.size, files=files) if step.captions else ()
    fps = frame_rate(request.preset, used)
    # The FFmpeg methods mux the subtitle track in as they render; MoviePy's video gets it after (_deliver).
    cued = _cue_files(plan, speech, step, attempt_dir) if request.subtitles and not files else None
    try:
        sound_file, loudness = sound.carried_at(used.audio_kbps, method)
    except RenderFailed as exc:  # this render's own sound could not be written: the chain goes on
        _attempted(run, step, limit, "failed", f"could not write the sound for its {used.audio_kbps}k AAC: {exc}",
                   0.0, 0.0, emit)  # fmt: skip
        return None
    spec = RenderSpec(
        method=method, card_path=str(card), audio_path=str(sound_file), audio_stereo=sound.stereo,
        out_path=str(attempt_dir / "out.mp4"), temp_dir=str(attempt_dir),
        width=width, height=height, fps=fps, video_kbps=used.video_kbps, audio_kbps=used.audio_kbps,
        duration_s=round(duration, 3), threads=encoder_threads(), captions=cards,
        motion=step.motion, crash=method in request.crash_methods,
        subtitles=str(cued) if cued else "", lang=request.lang,
    )  # fmt: skip
    offset = run.elapsed()

    def on_sample(t_s: float, rss_mb: float) -> None:
        run.timeline.append((round(offset + t_s, 3), round(rss_mb, 1)))
        emit(MemorySample(offset + t_s, rss_mb, limit, method))

    at = min(1.0, duration / 2)  # the picture quality is measured there
    index = next((i for i, (_, start, end) in enumerate(spec.captions) if start <= at < end), None)
    early: list[Future[Quality | None]] = []

    def pictures_made(stream: Path, held: still_loop.Pictures) -> None:
        """The FFmpeg methods' pictures measured as they are muxed, beside the mux (after it, the
        measure took 0.13 s beside a 0.06 s check). A hard link keeps the stream past the attempt's
        scratch files; where none can be made, the video is measured after. Never raises: it runs
        in the watchdog's `before`, and a measure is not worth an attempt."""
        number = held.number_at(at, fps)
        state = held.shown[number - 2][0] if spec.captions else None
        kept = attempt_dir / "measured.h264"
        try:
            os.link(stream, kept)
            early.append(_BESIDE.submit(pictures.measure, kept, step.size, state, at, number))
        except (OSError, RuntimeError) as exc:  # RuntimeError: the pool is shutting down
            log.info("the pictures are measured in the video instead: %s", exc)
            kept.unlink(missing_ok=True)

    try:
        with run.stage("render"):
            frames = None if files else pictures.frames(step.size, bool(cards))
            isolated = run_isolated(spec, limit, on_sample=on_sample, frames=frames,
                                    on_pictures=None if files else pictures_made)  # fmt: skip
    except BaseException:
        _settle(early)  # a measure begun before the mux ends before its folder is removed
        raise
    status, error = isolated.status, isolated.error
    probe = quality = None
    if status != "ok":
        _settle(early)
    else:
        with run.stage("quality"):  # measured while the file is verified: two processes, two cores
            video = Path(spec.out_path)
            measured = early[0] if early else _BESIDE.submit(pictures.measure, video, step.size, index, at)
        try:
            with run.stage("verify"):
                probe = verify(video, width, height, duration, fps, subtitles=cued is not None)
        except RenderFailed as exc:
            status, error = "unverified", str(exc)
        finally:
            with run.stage("quality"):
                quality = measured.result()
                if quality is None and early and probe is not None:  # the stream could not be read
                    quality = pictures.measure(video, step.size, index, at)
    _attempted(run, step, limit, status, error, isolated.peak_rss_mb, isolated.wall_s, emit)
    if probe is None:
        return None
    if method == "emergency":
        run.learn(tier_reason=f"emergency fallback, 480p at most {used.max_duration_s:.0f} s "
                              f"(asked: {run.known.tier_reason})")  # fmt: skip
    run.learn(
        loudness_lufs=loudness.integrated_lufs, true_peak_dbtp=loudness.true_peak_dbtp,
        ssim=quality.ssim if quality else None, psnr_db=quality.psnr_db if quality else None,
        method=method, tier=used.name, width=probe.width, height=probe.height,
        duration_s=round(probe.duration_s, 3), size_bytes=probe.size_bytes,
        video_kbps=used.video_kbps, audio_kbps=used.audio_kbps, fps=fps,
        captions=bool(spec.captions), motion=spec.motion, notes=_notes(request, spec, speech),
    )  # fmt: skip
    return Path(spec.out_path)


def _settle(started: list[Future[Any]]) -> None:
    """Work beside no longer wanted: cancelled where it has not begun, else waited for."""
    for future in started:
        future.cancel()
    wait(started)


def _attempted(
    run: _Run, step: Step, limit: float, status: str, error: str | None, peak_mb: float, wall_s: float, emit: OnEvent
) -> None:
    """Record an attempt's outcome, and tell the watcher."""
    attempt = Attempt(
        step.method, step.tier.name, status, error, peak_mb, wall_s, round(limit, 1),
        captions=step.captions, motion=step.motion, predicted_peak_mb=step.predicted.peak_mb,
    )  # fmt: skip
    run.attempts.append(attempt)
    emit(AttemptEvent(attempt))
    if status != "ok":
        log.warning("attempt %s at %s failed: %s", step.method, step.tier.name, error)


def _notes(request: Request, spec: RenderSpec, speech: Speech) -> tuple[str, ...]:
    """What the delivered video leaves out of what was asked, and why."""
    notes = []
    if request.motion and not spec.motion:
        notes.append(f"motion left out: the {spec.method} fallback renders a still card (captions kept)")
    if request.captions and not spec.captions:
        notes.append(f"captions left out: the {spec.method} render has none")
    if spec.duration_s < speech.duration_s - 0.01:
        notes.append(f"cut to {spec.duration_s:.0f} s: the {spec.method} render is at most that long")
    return tuple(notes)
