"""Online speech through gTTS, guarded against its known traps.

gTTS waits forever by default, is rate-limited (429), and on some failures writes a
0-byte file without raising; so: a timeout, and a check that the audio decodes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine import ffmpeg
from engine.errors import InvalidInput, RenderFailed, SpeechFailed
from engine.speech.base import Speech, wav_duration_s

log = logging.getLogger(__name__)


class GttsEngine:
    name = "gtts"

    def __init__(self, tld: str = "com", slow: bool = False, timeout_s: float = 10.0) -> None:
        self.tld = tld
        self.slow = slow
        self.timeout_s = timeout_s

    def synthesize(self, text: str, lang: str, out_dir: Path) -> Speech:
        from gtts import gTTS, gTTSError  # imported here: requests is heavy for a render child

        mp3 = out_dir / "speech.mp3"
        try:
            tts = gTTS(text, lang=lang, tld=self.tld, slow=self.slow, timeout=self.timeout_s)
        except ValueError:
            raise InvalidInput(f"language {lang!r} is not offered by gTTS; choose another language") from None
        try:
            with mp3.open("wb") as fp:
                tts.write_to_fp(fp)
        except gTTSError as exc:
            raise SpeechFailed(f"gTTS failed: {_reason(exc)}") from None
        except (AssertionError, OSError) as exc:
            raise SpeechFailed(f"gTTS failed: {exc or type(exc).__name__}") from None
        if mp3.stat().st_size == 0:
            raise SpeechFailed("gTTS answered without audio (an empty file)")
        wav = out_dir / "speech.wav"
        try:
            ffmpeg.run(["-i", str(mp3), "-ac", "1", "-ar", "24000", str(wav)], timeout_s=120)
        except RenderFailed as exc:
            raise SpeechFailed(f"gTTS audio could not be decoded ({exc})") from None
        finally:
            mp3.unlink(missing_ok=True)
        duration = wav_duration_s(wav)
        if duration <= 0:
            raise SpeechFailed("gTTS audio decoded to silence of zero length")
        return Speech(wav, duration, self.name)


def _reason(exc: Exception) -> str:
    response = getattr(exc, "rsp", None)
    if response is not None and response.status_code == 429:
        return "rate-limited by Google (429 Too Many Requests)"
    if response is not None:
        return f"HTTP {response.status_code} from Google"
    cause = exc.__context__
    if cause is not None and "Timeout" in type(cause).__name__:
        return "timed out"
    return str(exc).rstrip(".") or "no answer"
