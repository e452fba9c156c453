"""How the pages name each choice (engine/choices.py holds the choices themselves)."""

from __future__ import annotations

TTS_LABELS = {
    "auto": "Auto (gTTS, then offline voices)", "gtts": "gTTS (online)", "piper": "Neural, offline (Piper)",
    "espeak": "Robotic, offline (eSpeak NG)",
}  # fmt: skip
SPEED_LABELS = {"slower": "Slower", "normal": "Normal", "faster": "Faster"}
TIER_LABELS = {"auto": "Auto", "high": "High", "medium": "Medium", "low": "Low"}
PRESET_LABELS = {
    "none": "None", "reels": "Reels, TikTok, Shorts (9:16, 30 fps)", "youtube": "YouTube (16:9)",
    "square": "Square (1:1)",
}  # fmt: skip
CAPTION_STYLE_LABELS = {"phrase": "Phrase", "word": "Word by word"}
MUSIC_LABELS = {"none": "None", "pad": "Soft pad", "piano": "Piano", "pulse": "Pulse", "upload": "My own file"}
METHOD_LABELS = {"auto": "Auto", "moviepy": "MoviePy", "ffmpeg": "FFmpeg", "emergency": "Emergency"}
