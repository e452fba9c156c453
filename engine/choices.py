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
# Platform presets: name: (aspect, frames per second or None for the tier's). Reels, TikTok and
# Shorts take 1080x1920 at 30 fps; the tier still sets the size (low: 480x854).
PRESETS: dict[str, tuple[str, int | None]] = {"reels": ("9:16", 30), "youtube": ("16:9", None), "square": ("1:1", None)}
CAPTION_STYLES = ("phrase", "word")  # the phrase highlighted, or the word being spoken within its phrase
MUSIC_BEDS = ("pad", "piano", "pulse")  # made by the project (engine.audio.music)
MUSIC_CHOICES = ("none", *MUSIC_BEDS)  # and an upload, carried as bytes
TIER_POLICIES = ("measured", "seed")
WINDOWS: dict[str, float | None] = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "all": None}  # seconds
