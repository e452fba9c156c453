"""Online speech through gTTS, guarded against its known traps.

gTTS waits forever by default, is rate-limited (429), and on some failures writes a
0-byte file without raising; so: a timeout, and a check that the audio decodes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import InvalidInput, RenderFailed, SpeechFailed
from engine.render import ffmpeg
from engine.speech.base import Speech, SpeechOrder, WordTiming, join_wavs, wav_duration_s

log = logging.getLogger(__name__)
SAMPLE_RATE = 24000


class GttsEngine:
    name = "gtts"

    def __init__(self, tld: str = "com", timeout_s: float = 10.0) -> None:
        self.tld = tld
        self.timeout_s = timeout_s

    def synthesize(self, order: SpeechOrder) -> Speech:
        """The whole text in one go; or, when captions need timings, phrase by phrase, measuring
        each piece so captions know when each phrase starts. Google speaks slower on request;
        faster is its normal speech quickened (ffmpeg's atempo, pitch kept) as it is decoded."""
        text, lang, out_dir = order.text, order.lang, order.out_dir
        pace = (order.speed == "slower", order.rate if order.speed == "faster" else 1.0)  # (slow, tempo)
        phrases = order.phrases if order.timed else ()
        if not phrases or len(phrases) == 1:
            wav = self._one(text, lang, out_dir, "speech", pace)
            duration = wav_duration_s(wav)
            return Speech(wav, duration, self.name, (WordTiming(text, 0.0, duration, 0),))
        pieces, timings, clock = [], [], 0.0
        try:
            for index, (start, end) in enumerate(phrases):
                piece = self._one(text[start:end], lang, out_dir, f"phrase-{index:03d}", pace)
                length = wav_duration_s(piece)
                pieces.append(piece)
                timings.append(WordTiming(text[start:end], round(clock, 3), round(clock + length, 3), start))
                clock += length
            wav = join_wavs(pieces, out_dir / "speech.wav")
        finally:
            for piece in pieces:
                piece.unlink(missing_ok=True)
        return Speech(wav, wav_duration_s(wav), self.name, tuple(timings))

    def _one(self, text: str, lang: str, out_dir: Path, stem: str, pace: tuple[bool, float]) -> Path:
        from gtts import gTTS, gTTSError  # imported here: requests is heavy for a render child

        mp3 = out_dir / f"{stem}.mp3"
        try:
            tts = gTTS(text, lang=lang, tld=self.tld, slow=pace[0], timeout=self.timeout_s)
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
        wav = out_dir / f"{stem}.wav"
        try:
            tempo = ["-filter:a", f"atempo={pace[1]}"] if pace[1] != 1.0 else []
            ffmpeg.run(["-i", str(mp3), *tempo, "-ac", "1", "-ar", str(SAMPLE_RATE), str(wav)], timeout_s=120)
        except RenderFailed as exc:
            wav.unlink(missing_ok=True)
            raise SpeechFailed(f"gTTS audio could not be decoded ({exc})") from None
        finally:
            mp3.unlink(missing_ok=True)
        if wav_duration_s(wav) <= 0:
            wav.unlink(missing_ok=True)
            raise SpeechFailed("gTTS audio decoded to silence of zero length")
        return wav


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
