"""How the pages name each choice (engine/choices.py holds the choices themselves)."""

from __future__ import annotations

TTS_LABELS = {"auto": "Auto (gTTS, offline if it fails)", "gtts": "gTTS (online)", "espeak": "Offline (eSpeak NG)"}
TIER_LABELS = {"auto": "Auto", "high": "High", "medium": "Medium", "low": "Low"}
METHOD_LABELS = {"auto": "Auto", "moviepy": "MoviePy", "ffmpeg": "FFmpeg", "emergency": "Emergency"}
