"""The render spec: plain data that crosses into the child process (and, later, a queue)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from engine.render.aac_stereo import MONO_AAC

AUDIO_RATE = 48000  # Hz: what the platforms' upload specifications ask for (AAC-LC at 44.1 or 48 kHz)


# The mastered mono speech on both channels at its own level (`-ac 2` would lower it by 3 dB).
MONO_TO_STEREO = "pan=stereo|c0=c0|c1=c0"
FFMPEG_METHODS = ("ffmpeg", "emergency")  # bare ffmpeg runs (engine.render.still_loop), no Python child

# How a render codes its sound: the mono speech as one channel, made stereo after in the bitstream
# (engine.render.aac_stereo); the mono speech spread to both channels; a stereo mix with music.
Coding = Literal["one", "spread", "stereo"]


def coding(method: str, stereo: bool) -> Coding:
    """How `method` codes the sound (`stereo`: a mix with music): the FFmpeg methods code the mono
    speech as one channel; MoviePy's writer codes both, as every method does a mix."""
    return "stereo" if stereo else "one" if method in FFMPEG_METHODS else "spread"


def aac(kbps: int, coded: Coding = "spread", then: str = "") -> list[str]:
    """ffmpeg's output options for the sound of every method, from the mastered mono speech (or a
    stereo mix with music) `coded` so, with the filters `then` last: AAC-LC, 48 kHz stereo. The fast
    coder: as good to the ear for speech, 2.7x quicker, and its true peaks overshoot less than the
    default two-loop coder's (which reached +1.4 dBTP at 64k); what is left depends on the bitrate,
    and mastering leaves room for it (`engine.audio.master.CARRIERS`)."""
    if coded == "one":
        filters, channels, tools, kbps = then, "1", MONO_AAC, one_channel_kbps(kbps)
    else:
        spread = [MONO_TO_STEREO] if coded == "spread" else []
        filters, channels, tools = ",".join(spread + ([then] if then else [])), "2", []
    return [*(["-af", filters] if filters else []), "-c:a", "aac", "-aac_coder", "fast", *tools,
            "-b:a", f"{kbps}k", "-ar", str(AUDIO_RATE), "-ac", channels]  # fmt: skip


def one_channel_kbps(kbps: int) -> int:
    """The bitrate to ask of a one-channel encode that is to carry `kbps`: ffmpeg's AAC encoder spends
    more than it is asked, and on one channel more than on two (the long quote at 32k: 42.8 kbit/s
    against 37.7), so it is asked less, to stay within what the two-channel encode of the tier's
    bitrate spent (measured on the bench's medium and long quotes: 120 for 128, 56 for 64, 40 for 48,
    28 for 32), where the tier's file cap allows for it."""
    return kbps - (8 if kbps >= 48 else 4)


# What the platforms' upload specifications ask of the container and the picture (YouTube, Reels,
# TikTok): the moov atom first, no edit lists (ffmpeg writes one for AAC's priming samples unless
# told not to), H.264 High, 4:2:0, constant frame rate. Without the edit list, shifting timestamps
# to start at zero would stretch the first frame by the 21 ms of priming (its stts entry differs):
# they are left as they are. Closed GOPs are x264's default.
MP4_DELIVERY = ["-movflags", "+faststart", "-use_editlist", "0", "-avoid_negative_ts", "disabled"]
H264_HIGH = ["-profile:v", "high", "-pix_fmt", "yuv420p"]

_ISO639_2 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ru": "rus",
             "ja": "jpn", "zh": "zho", "ko": "kor", "ar": "ara", "hi": "hin", "he": "heb", "th": "tha"}  # fmt: skip


def subtitle_track(srt: str, lang: str, index: int) -> tuple[list[str], list[str]]:
    """ffmpeg's input and output options that add the cues of `srt` (input number `index`) as a
    mov_text track, its language named in ISO 639-2/T as MP4 asks ('und' for one not listed)."""
    code = _ISO639_2.get(lang.split("-")[0].lower(), "und")
    return ["-i", srt], ["-map", f"{index}:s:0", "-c:s", "mov_text", "-metadata:s:s:0", f"language={code}"]


# A still picture gains nothing from B-frames, extra references or lookahead; each costs frames of memory.
# 8x8 transforms make the stream High profile even at `ultrafast` (MoviePy's), which turns them off.
X264_STILL = "rc-lookahead=0:sync-lookahead=0:bframes=0:ref=1:8x8dct=1"


# The tier's video bitrate caps the whole file (what the platforms and the tier count), so a render
# that encodes every change gives x264 a rate that leaves room for the sound, the MP4's own boxes,
# and what the VBV may spend beyond its rate from the buffer it starts with (90% of BUFFER_S).
BUFFER_S = 4
VBV_INIT = 0.9  # x264's default
MUX_KBPS = 4  # the boxes of a 1080p MP4 with 30 fps: about 2.5 kbit/s, measured


def macroblocks(width: int, height: int) -> int:
    """The 16x16 blocks H.264 codes a frame of this size in."""
    return -(-width // 16) * -(-height // 16)


@dataclass(frozen=True)
class RenderSpec:
    method: str
    card_path: str
    audio_path: str
    out_path: str
    temp_dir: str
    width: int
    height: int
    fps: int
    video_kbps: int
    audio_kbps: int
    duration_s: float
    threads: int = 2
    # Caption states: (card path, start s, end s), covering 0..duration_s; empty without captions.
    captions: tuple[tuple[str, float, float], ...] = ()
    motion: bool = False  # fade-in and slow zoom (MoviePy only)
    # Cues (an SRT file) muxed as the video's subtitle track, and their language (FFmpeg methods only:
    # MoviePy's video gets its track after, engine.render.deliver.with_subtitles).
    subtitles: str = ""
    lang: str = ""
    audio_stereo: bool = False  # a mix with music; the speech alone is mono
    crash: bool = False  # test seam: the method's process dies as it starts (SIGABRT), as a broken one would

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RenderSpec:
        data = json.loads(text)
        data["captions"] = tuple(tuple(state) for state in data.get("captions", ()))
        return cls(**data)

    def capped_kbps(self) -> int:
        """x264's maxrate (with a VBV buffer of BUFFER_S seconds of it) so that the file stays
        within the tier's video bitrate over its duration."""
        room = (self.room_kbps() - self.skip_kbps()) / (1 + VBV_INIT * BUFFER_S / max(self.duration_s, 1.0))
        return max(self.video_kbps // 4, round(room))

    def skip_kbps(self) -> float:
        """The bits of the frames that only hold a picture (engine.render.h264): 69 bytes each at
        1080x1920, measured, of which about 16 are headers."""
        return self.fps * (16 + macroblocks(self.width, self.height) / 128) * 8 / 1000

    def room_kbps(self) -> int:
        """What the tier's video bitrate leaves the picture: less the sound and the MP4's boxes."""
        return self.video_kbps - self.audio_kbps - MUX_KBPS

    def frame_bounds(self) -> list[tuple[str, int, int]]:
        """Caption states as (card, first frame, end frame); the whole video when there are none."""
        if not self.captions:
            return [(self.card_path, 0, round(self.duration_s * self.fps))]
        return [(self.captions[index][0], first, last) for index, first, last in self.state_frames()]

    def state_frames(self) -> list[tuple[int, int, int]]:
        """Caption states as whole frames (index, first, end): rounded from absolute times, so
        rounding never accumulates into drift; a state shorter than a frame is dropped."""
        bounds = []
        for index, (_card, start, end) in enumerate(self.captions):
            first = 0 if index == 0 else round(start * self.fps)
            last = round(self.duration_s * self.fps) if index == len(self.captions) - 1 else round(end * self.fps)
            if last > first:
                bounds.append((index, first, last))
        return bounds


def encoder_threads(limit: int = 2) -> int:
    """Threads for x264: the CPUs this process may use, at most `limit`.

    ffmpeg's automatic count follows the host's CPUs, not the container's quota, and
    every x264 thread holds its own frames: more threads, more memory.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, min(limit, cpus))


def _cgroup_cpu_quota() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)
