"""Every list of choices a request, a setting or a view takes, defined once: the engine checks
against these, and the CLI and the pages offer them."""

from __future__ import annotations

TIERS = ("high", "medium", "low")  # best first
TIER_CHOICES = ("auto", *TIERS)
METHODS = ("moviepy", "ffmpeg", "emergency")  # the fallback chain, in order
METHOD_CHOICES = ("auto", *METHODS)
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}  # name: (width, height) ratio
TTS_CHOICES = ("auto", "gtts", "piper", "espeak")
SPEEDS = ("slower", "normal", "faster")  # speaking rate
TIER_POLICIES = ("measured", "seed")
WINDOWS: dict[str, float | None] = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "all": None}  # seconds
