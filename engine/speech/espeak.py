"""Offline speech: eSpeak NG through ctypes, on the library and data the espeakng-loader wheel ships.

No system package is needed. eSpeak NG keeps global state, so every call holds one
process-wide lock; its word events carry audio positions, which become word timings.
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata
import wave

from engine.errors import InvalidInput, SpeechFailed
from engine.speech.base import Speech, SpeechOrder, WordTiming

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_WORDS_PER_MINUTE = 165


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # a union of int, const char* and char[8]
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_sample_rate = 0


def _library() -> ctypes.CDLL:
    """Load and initialise the library once per process (call with the lock held)."""
    global _lib, _sample_rate
    if _lib is None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path().encode()
        except (ImportError, OSError, RuntimeError) as exc:
            raise SpeechFailed(f"offline speech is not installed ({exc}); run `make run` to set it up") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SpeechFailed("offline speech could not start (eSpeak NG data not found); reinstall requirements")
        _lib, _sample_rate = lib, rate
    return _lib


def languages() -> list[str]:
    """Language codes the offline engine offers (e.g. "en", "en-us", "fr")."""
    with _lock:
        lib = _library()
        voices = lib.espeak_ListVoices(None)
        codes: set[str] = set()
        i = 0
        while voices[i]:
            raw = ctypes.string_at(voices[i].contents.languages)
            # "languages" is a list of (priority byte, NUL-terminated name) pairs
            codes.add(raw[1:].decode(errors="replace"))
            i += 1
    return sorted(codes)


class EspeakEngine:
    name = "espeak"

    def synthesize(self, order: SpeechOrder) -> Speech:
        """Word events time every word, so phrases need no separate synthesis."""
        text, lang, out_dir = order.text, order.lang, order.out_dir
        pcm = bytearray()
        marks: list[tuple[int, int, int]] = []  # (text position, length, audio ms)

        def on_audio(wav, count, events) -> int:
            if count > 0:
                pcm.extend(ctypes.string_at(wav, count * 2))
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EVENT_WORD:
                    marks.append((ev.text_position, ev.length, ev.audio_position))
                i += 1
            return 0

        callback = _CALLBACK(on_audio)  # kept referenced until synthesis returns
        encoded = text.encode("utf-8")
        with _lock:
            lib = _library()
            if lib.espeak_SetVoiceByName(lang.encode()) != 0:
                raise InvalidInput(f"language {lang!r} is not offered by the offline voice; choose another language")
            lib.espeak_SetParameter(_PARAM_RATE, round(_WORDS_PER_MINUTE * order.rate), 0)
            lib.espeak_SetSynthCallback(callback)
            status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            rate = _sample_rate
        if status != 0 or not pcm:
            raise SpeechFailed("the offline voice produced no audio for this text; try rewording it")
        path = out_dir / "speech.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(bytes(pcm))
        duration = len(pcm) / 2 / rate
        return Speech(path, duration, self.name, _word_timings(text, marks, duration))


def _word_timings(text: str, marks: list[tuple[int, int, int]], duration_s: float) -> tuple[WordTiming, ...]:
    """Each word lasts from its event to the next word's event (the last to the end)."""
    words = []
    for index, (position, length, audio_ms) in enumerate(marks):
        end_ms = marks[index + 1][2] if index + 1 < len(marks) else duration_s * 1000
        word = text[position - 1 : position - 1 + length]  # positions count characters from 1
        word = "".join(ch for ch in word if unicodedata.category(ch)[0] != "C")
        words.append(WordTiming(word, audio_ms / 1000, max(audio_ms, end_ms) / 1000, position - 1))
    return tuple(words)
