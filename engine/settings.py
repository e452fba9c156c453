"""Settings, read from the environment once and passed down.

No module reads the environment on import: call `Settings.from_env()` at an entry
point (CLI, app) and hand the result to whatever needs it. Tests pass a plain dict.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.choices import TIER_POLICIES, TTS_CHOICES
from engine.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    max_memory_mb: int | None = None
    min_required_memory_mb: int | None = None  # None: the cost model's cheapest render plus margin
    max_video_duration_s: float = 300.0
    max_resolution_height: int = 1080
    default_bitrate_kbps: int = 800
    data_dir: Path = Path("data")
    database_url: str | None = None
    max_storage_mb: int | None = None
    tts_engine: str = "auto"
    max_text_chars: int = 2000
    admin_token: str | None = None
    broker_url: str | None = None
    job_lease_s: int = 20
    tier_policy: str = "measured"  # "seed": the seed's fixed thresholds (1 GB, 512 MB) and 400 MB floor
    admission_wait_s: int = 120  # the longest a request waits its turn for memory before "busy"
    queue_silence_s: int = 30  # how long a caller waits for a silent job queue before it gives up
    max_batch_rows: int = 12  # rows one visitor may start in a batch on the page (the per-visitor window's)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default `os.environ`); ConfigError names a bad one."""
        env = os.environ if environ is None else environ
        get = _Reader(env)
        return cls(
            max_memory_mb=get.optional_integer("MAX_MEMORY_MB", low=64),
            min_required_memory_mb=get.optional_integer("MIN_REQUIRED_MEMORY_MB", low=0),
            max_video_duration_s=float(get.integer("MAX_VIDEO_DURATION", 300, low=1, high=3600)),
            max_resolution_height=get.integer("MAX_RESOLUTION_HEIGHT", 1080, low=240, high=2160),
            default_bitrate_kbps=get.bitrate("DEFAULT_BITRATE", 800),
            data_dir=Path(get.text("DATA_DIR") or "data"),
            database_url=get.text("DATABASE_URL"),
            max_storage_mb=get.optional_integer("MAX_STORAGE_MB", low=1),
            tts_engine=get.choice("TTS_ENGINE", "auto", TTS_CHOICES),
            max_text_chars=get.integer("MAX_TEXT_CHARS", 2000, low=1, high=100_000),
            admin_token=get.text("ADMIN_TOKEN"),
            broker_url=get.text("BROKER_URL"),
            job_lease_s=get.integer("JOB_LEASE_S", 20, low=2, high=3600),
            tier_policy=get.choice("TIER_POLICY", "measured", TIER_POLICIES),
            admission_wait_s=get.integer("ADMISSION_WAIT_S", 120, low=1, high=3600),
            queue_silence_s=get.integer("QUEUE_SILENCE_S", 30, low=1, high=3600),
            max_batch_rows=get.integer("MAX_BATCH_ROWS", 12, low=1, high=100_000),
        )

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def models_dir(self) -> Path:
        """What this host prepares once and keeps: the neural voice saved for mapping (engine.speech.piper)."""
        return self.data_dir / "models"


class _Reader:
    """Reads and checks one variable at a time; every failure names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, low: int = 0, high: int | None = None) -> int:
        value = self.optional_integer(name, low, high, example=default)
        return default if value is None else value

    def optional_integer(
        self, name: str, low: int = 0, high: int | None = None, example: int | None = None
    ) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        default = example
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"{name}={raw!r} is not a whole number; set it to one, e.g. {name}={default or low}"
            ) from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name}={value} is out of range; it takes a whole number {bounds}")
        return value

    def bitrate(self, name: str, default_kbps: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default_kbps
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmM]?)", raw)
        if not match:
            raise ConfigError(f"{name}={raw!r} is not a bitrate; write it like 800k or 1.5M")
        number, unit = float(match[1]), match[2].lower()
        kbps = int(number * 1000) if unit == "m" else int(number) if unit == "k" else int(number / 1000)
        if not 50 <= kbps <= 20_000:
            raise ConfigError(f"{name}={raw!r} is out of range; it takes 50k to 20M")
        return kbps

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name}={raw!r} is not valid; it takes one of: {', '.join(choices)}")
        return raw.lower()
