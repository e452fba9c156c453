"""Value objects of one generation: the request, its attempts, its result, its progress events."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Request:
    text: str
    author: str = ""
    lang: str = "en"
    tts: str | None = None  # None: the TTS_ENGINE setting
    tld: str = "com"  # gTTS accent, e.g. "co.uk"
    speed: str = "normal"  # speaking rate: slower, normal or faster
    tier: str = "auto"
    method: str = "auto"
    fallback: bool = True  # False runs the chosen method alone, for tuning
    aspect: str = "16:9"
    preset: str | None = None  # reels, youtube or square: sets the aspect (and reels 30 fps)
    captions: bool = False
    caption_style: str = "phrase"  # or "word": the word being spoken highlighted within its phrase
    subtitles: bool = False  # .srt and .vtt beside the MP4, and a subtitle track inside it
    motion: bool = False
    background: str = "midnight"  # a name from engine.visuals.background.PALETTE
    background_image: bytes | None = field(default=None, repr=False)  # JPEG, PNG or WebP, checked by content
    music: str = "none"  # a bed's name, "none", or "upload" with `music_upload`
    music_upload: bytes | None = field(default=None, repr=False)  # MP3, WAV, OGG or M4A, checked by content
    out: Path | None = None
    crash_methods: tuple[str, ...] = ()  # test seam: these methods' children die on start


@dataclass(frozen=True)
class QueueDelivery:
    """Where a generation came from when a worker took it off the queue."""

    job_id: str  # the Celery task id, the same on every delivery
    number: int = 1  # 2 when a worker was lost mid-job and another took it over


@dataclass(frozen=True)
class Attempt:
    method: str
    tier: str
    status: str  # "ok", "failed", "killed", "crashed", "timeout", "unverified"
    error: str | None
    peak_rss_mb: float
    wall_s: float
    budget_mb: float = 0.0  # the watchdog's limit for this attempt
    captions: bool = False  # as rendered (the emergency render drops them)
    motion: bool = False
    predicted_peak_mb: float | None = None  # the cost model's p95 for this attempt's cell


# Fields of a Result that are not a column of the history's `generations` table of the same name:
# the row's key, the output (stored as `output_path`), stage times (as JSON), attempts and the
# timeline (tables of their own), and notes (shown, not kept). Every other field is stored as
# is: the store writes them by name, and a test checks that the table and its record follow.
# The cover and subtitle files sit beside the output under its name, so they are not stored either.
NOT_STORED = ("generation_id", "output", "stage_s", "attempts", "timeline", "notes", "cover", "subtitles")


@dataclass(frozen=True)
class Result:
    generation_id: str
    status: str  # "ok" or "error"
    output: Path | None = None
    cover: Path | None = None  # a JPEG of the card beside the MP4
    subtitles: tuple[Path, ...] = ()  # the .srt and .vtt beside the MP4, when asked
    tier: str | None = None
    tier_asked: str = "auto"
    tier_reason: str | None = None
    tier_policy: str | None = None  # "measured" or "seed"
    seed_tier: str | None = None  # what the seed's thresholds would have chosen
    method: str | None = None
    tts_engine: str | None = None
    tts_fallback_reason: str | None = None
    tts_peak_mb: float | None = None  # of a voice that speaks in a process of its own (Piper)
    speed: str = "normal"
    # Of the sound the delivered render carried (the speech, or its mix with music), as mastered for its
    # AAC bitrate: integrated loudness (EBU R128) as that encode delivers it, and the file's true peak.
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None
    aspect: str = "16:9"
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    size_bytes: int = 0
    video_kbps: int = 0
    audio_kbps: int = 0
    peak_rss_mb: float = 0.0
    available_mb: float = 0.0
    budget_mb: float = 0.0  # what one render could hold when it was planned (the render capacity)
    app_rss_mb: float = 0.0
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    attempts: tuple[Attempt, ...] = ()
    timeline: tuple[tuple[float, float], ...] = ()
    captions: bool = False  # as delivered, which a fallback may have changed
    caption_style: str = "phrase"
    preset: str | None = None
    music: str = "none"
    fps: int = 0
    motion: bool = False
    notes: tuple[str, ...] = ()  # what the video leaves out of what was asked, and why
    ssim: float | None = None  # picture quality of a frame against its card
    psnr_db: float | None = None
    predicted_peak_mb: float | None = None  # the cost model's p95 for the chosen tier's first method
    predicted_wall_s: float | None = None
    prediction_source: str | None = None  # "prior", "history" or "unknown"
    error: str | None = None
    error_kind: str | None = None  # the QuoteError's kind: busy, not_enough_memory, render_failed, ...

    @property
    def fell_back(self) -> bool:
        return self.status == "ok" and len(self.attempts) > 1


@dataclass(frozen=True)
class StageEvent:
    stage: str  # "admit", "speech", "card", "render", "verify", "done"
    message: str


@dataclass(frozen=True)
class MemorySample:
    t_s: float  # seconds since the generation started
    rss_mb: float
    budget_mb: float
    method: str


@dataclass(frozen=True)
class AttemptEvent:
    attempt: Attempt


ProgressEvent = StageEvent | MemorySample | AttemptEvent
