"""The video's sound, encoded for the FFmpeg and emergency methods: for the FFmpeg method, in two
halves at a pause, each on its own core, when there is a pause to split at.

ffmpeg's AAC encoder runs on one thread, and with a still card it is the render's longest part:
0.52 s for the 32 s of the 529-character quote, coding both channels (0.33 s coding one, as the
speech is now: engine.render.aac_stereo). Two encoders on the two halves, in the same ffmpeg run:
0.38 s (0.25 s coding one); the still card's whole encode, 0.58 to 0.49 s (measured in turn). In two processes
they took 0.35 s, but a render step is one process under the watchdog; halved by one filter graph
(`asplit`), no quicker than whole, as a graph runs on one thread.

The halves are joined by copy. An AAC frame decodes by overlapping the window of the frame before
it, 2,048 samples, so each half's encoder sees silence past its end where the whole encode sees the
other half: where that window is silent as well, nothing is lost. The first half's last frame and
the second half's first cover the same window across the split; the second's is dropped. Measured
against the source at 48 kHz on that quote (both channels coded): 44.57 dB SNR joined, 44.50 dB in
one encode, the same length to the sample.

A mix with music is encoded whole (a bed is never silent: scanning it would find no pause), as is a
sound with no pause near its middle, and the emergency render's.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.levels import levels
from engine.render.aac_stereo import make_stereo
from engine.render.spec import AUDIO_RATE, RenderSpec, aac, coding

FRAME = 1024  # samples an AAC-LC frame adds
QUIET_DBFS = -60.0  # the highest sample of a silent 10 ms, for the window across the split
REACH_S = 0.005  # how far the resampler to 48 kHz looks either side of a sample (32 taps at 8 kHz)


@dataclass(frozen=True)
class Encode:
    """ffmpeg arguments for the sound: its inputs (after the pictures' input 0), its outputs, the
    files they write, and how the mux reads them back as one stream."""

    inputs: list[str]
    outputs: list[str]
    files: list[Path]
    source: list[str]
    one_channel: bool  # the mono speech, coded as one channel: made stereo before the mux reads it

    def finish(self) -> None:
        """The encoded files as the mux reads them; RenderFailed if they cannot be."""
        for path in self.files if self.one_channel else ():
            make_stereo(path)


def encode(spec: RenderSpec, temp: Path) -> Encode:
    """The sound of `spec` as ADTS: halved at a pause when it has one and two cores may run it."""
    # The emergency render is the smallest there is, and sets the floor: a second encoder costs it
    # 2 to 3.6 MB (12% to 28%, measured by calibrate) for a tenth of a second. A path with "|" would
    # break the concat protocol's list.
    halve = spec.threads >= 2 and spec.method != "emergency" and not spec.audio_stereo and "|" not in str(temp)
    at = split_at(Path(spec.audio_path)) if halve else None
    coded = coding(spec.method, spec.audio_stereo)
    one = coded == "one"
    if at is None:
        whole = temp / "sound.aac"
        codec = aac(spec.audio_kbps, coded)
        return Encode(["-i", spec.audio_path], ["-map", "1:a:0", *codec, "-f", "adts", str(whole)], [whole],
                      ["-f", "aac", "-i", str(whole)], one)  # fmt: skip
    first, second = temp / "sound-1.aac", temp / "sound-2.aac"
    resample = f"aresample={AUDIO_RATE}"  # split in samples at 48 kHz, whole AAC frames
    head = aac(spec.audio_kbps, coded, f"{resample},atrim=end_sample={at}")
    tail = aac(spec.audio_kbps, coded, f"{resample},atrim=start_sample={at},asetpts=PTS-STARTPTS")
    return Encode(
        ["-i", spec.audio_path, "-i", spec.audio_path],
        ["-map", "1:a:0", *head, "-f", "adts", str(first),
         "-map", "2:a:0", *tail, "-bsf:a", r"noise=drop=eq(n\,0)", "-f", "adts", str(second)],
        [first, second],
        # ADTS frames follow one another as bytes: the concat protocol reads the two files as one.
        ["-f", "aac", "-i", f"concat:{first}|{second}"],
        one,
    )  # fmt: skip


def split_at(path: Path) -> int | None:
    """Where the second half starts, in samples at 48 kHz: a whole number of AAC frames in, in the
    middle half of the sound, nearest its middle, with a frame of silence either side; None when no
    such place is silent (or the file is not a 16-bit WAV)."""
    try:
        found = levels(path)
    except (OSError, EOFError, ValueError, wave.Error):  # ValueError: a truncated last frame
        return None
    quiet = found.peak <= 32768 * 10 ** (QUIET_DBFS / 20)
    total = int(found.length_s * AUDIO_RATE) // FRAME
    middle = total // 2
    for offset in range(total // 4):
        for frame in (middle - offset, middle + offset):
            start_s = (frame - 1) * FRAME / AUDIO_RATE - REACH_S
            end_s = (frame + 1) * FRAME / AUDIO_RATE + REACH_S
            first, last = math.floor(start_s / found.frame_s), math.floor(end_s / found.frame_s)
            if first >= 0 and last < len(quiet) and bool(np.all(quiet[first : last + 1])):
                return frame * FRAME
    return None
