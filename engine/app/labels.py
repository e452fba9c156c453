"""How the pages name each choice (engine/choices.py holds the choices themselves)."""

from __future__ import annotations

TTS_LABELS = {
    "auto": "Auto (gTTS, then offline voices)", "gtts": "gTTS (online)", "piper": "Neural, offline (Piper)",
    "espeak": "Robotic, offline (eSpeak NG)",
}  # fmt: skip
SPEED_LABELS = {"slower": "Slower", "normal": "Normal", "faster": "Faster"}
TIER_LABELS = {"auto": "Auto", "high": "High", "medium": "Medium", "low": "Low"}
METHOD_LABELS = {"auto": "Auto", "moviepy": "MoviePy", "ffmpeg": "FFmpeg", "emergency": "Emergency"}
