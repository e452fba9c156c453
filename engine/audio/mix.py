"""Music under the voice: the bed looped or cut to the speech, faded in and out, ducked by the voice
(ffmpeg's `sidechaincompress`, keyed by the speech), mixed, and the mix mastered like the speech.

Levels: the bed is set BED_BELOW_LU under the target loudness, where the voice was mastered
(within AIM_LU), before ducking; the compressor takes it down about 9 dB more while the voice
speaks. Measured on the long quote with each bed: the music sits 30 to 33 dB under the voice while
it speaks and comes up 8 to 9 dB between sentences (the tests hold it to at least 20 dB and 5 dB).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.audio.loudness import TARGET_LUFS
from engine.audio.master import BEST, Carrier, Mastered, level
from engine.audio.music import Music
from engine.render.spec import AUDIO_RATE, MONO_TO_STEREO
from engine.speech.base import Speech, wav_duration_s

BED_BELOW_LU = 12.0  # the bed's loudness under the target's (the mastered voice's), before ducking
MAX_BED_GAIN_DB = 20.0  # a nearly silent upload is raised this much at most, not into a wall of noise
FADE_IN_S = 1.0
FADE_OUT_S = 2.0
# Ducking: a fast attack so a word's first syllable is already clear, a slow release so the music
# does not pump between words; the threshold sits well under the mastered voice's level.
DUCK = "sidechaincompress=threshold=0.015:ratio=8:attack=15:release=350:knee=4"


def mix(speech: Speech, music: Music, out: Path, carried: Carrier = BEST) -> Mastered:
    """Write the mastered `speech` with `music` under it to `out` (48 kHz stereo WAV), mastered
    for the encode that leaves `carried` (as the speech was)."""
    duration = speech.duration_s
    bed_gain = min(MAX_BED_GAIN_DB, TARGET_LUFS - BED_BELOW_LU - music.integrated_lufs)
    fade_out_at = max(0.0, duration - FADE_OUT_S)
    shape = (
        f"[1:a:0]aformat=sample_rates={AUDIO_RATE}:channel_layouts=stereo,atrim=end={duration:.3f},"
        f"volume={bed_gain:.2f}dB,afade=t=in:d={FADE_IN_S},afade=t=out:st={fade_out_at:.3f}:d={FADE_OUT_S}[bed];"
        f"[0:a:0]aresample={AUDIO_RATE},{MONO_TO_STEREO},asplit[voice][key];"
        f"[bed][key]{DUCK}[ducked];"
        f"[voice][ducked]amix=inputs=2:normalize=0:duration=first"
    )
    inputs = [["-i", str(speech.path)], ["-stream_loop", "-1", "-i", str(music.path)]]
    # The voice was mastered to the target; the limiter takes back a little of the mix's peaks:
    # 0.3 dB more lands every bed under each bench quote within AIM_LU in one write (measured).
    loudness = level(inputs, shape, [(0.0, TARGET_LUFS + carried.lift_lu - 0.3)], out, carried, guessed=True)
    return Mastered(replace(speech, path=out, duration_s=wav_duration_s(out)), loudness)
