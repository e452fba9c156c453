"""The FFmpeg and emergency methods: each picture encoded once, held by skip frames.

A card changes only when a caption does, and a still card never. So x264 encodes each picture
once (a still card: one; with captions: one a state, and once more as a keyframe when the state
began between keyframes; keyframes every SEGMENT_S s are copies of one), handed over as raw frames
through a pipe at the rate they change, so that its rate control spends the bitrate over the
video's real duration. `engine.render.h264` then holds each picture for its frames with copies of
one all-skip P frame, and the stream is muxed by copy. The sound is encoded in the same run, on
threads of its own (`engine.render.sound`).

Two ffmpeg runs whatever the number of states. Measured at 1080x1920 against the methods they
replace (a looped 2 s segment; one segment per caption state, every frame encoded): the still card
96 MB (now 46), the phrase captions of 529 characters 102 MB and 11.2 s for the whole generation
(now 50 MB and 1.9 s), and word captions 22.6 s (2.6 s). Encoding every frame has a floor of its
own: x264 on 770 identical 1080x1920 frames takes 2.6 s at `ultrafast`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from engine.errors import RenderFailed
from engine.memory.malloc import FFMPEG_ENV
from engine.memory.watchdog import Progress, Step
from engine.render import ffmpeg
from engine.render.h264 import first_picture_bytes, splice
from engine.render.h264 import pictures as h264_pictures
from engine.render.sound import encode as encode_sound
from engine.render.spec import (
    BUFFER_S,
    FFMPEG_METHODS,
    H264_HIGH,
    MP4_DELIVERY,
    MUX_KBPS,
    X264_STILL,
    RenderSpec,
    macroblocks,
    subtitle_track,
)

METHODS = FFMPEG_METHODS  # the methods this module renders
SEGMENT_S = 2  # a keyframe at least this often, unless copies of a card's keyframe would break the cap
CRF = 23
PRESET = "superfast"
# Frames written to ffmpeg beyond those it reports encoded, before each write (one more after it).
# It reports each a frame late, so one is always on its way (with one alone, x264 waits for every
# report: 2.3 s for the 117 pictures of 529 characters' word captions at 1080x1920); a second keeps
# x264 busy while the next card is drawn (1.8 s, the same 49.6 MB); a third held 3 MB more
# (measured). Unbounded, its queues held a dozen frames. Should an ffmpeg report later still, a
# wait that stalls lets the feed one frame further ahead, not stall again for every picture.
AHEAD = 2
# Headers that do not depend on the pictures (x264's `stitchable`), and no keyframes but the ones
# asked for: what splicing needs. A still picture gains nothing from B-frames or lookahead.
X264_SPLICE = f"{X264_STILL}:stitchable=1:scenecut=0:subme=0"
# H.264 levels (Table A-1): the most macroblocks a second and in a frame. The pictures are encoded
# at their own slow rate, so x264 would pick the level for that rate; it is set for the video's.
_LEVELS = (("3.0", 40500, 1620), ("3.1", 108000, 3600), ("3.2", 216000, 5120), ("4.0", 245760, 8192),
           ("4.2", 522240, 8704), ("5.1", 983040, 36864), ("5.2", 2073600, 36864))  # fmt: skip

MAX_BUFFER_KBIT = 12000  # a VBV buffer every level we use allows (3.0, High: 12,500); no card's keyframe needs it

Frames = Callable[[int], bytes | memoryview]  # caption state index -> its card as one raw yuv420p frame
OnPictures = Callable[[Path, "Pictures"], None]  # the encoded pictures' stream, and what it holds


@dataclass(frozen=True)
class Pictures:
    """What x264 encodes, in order: (caption state, keyframe?), and how many frames each is held;
    a keyframe is shown again by copy every SEGMENT_S s of its hold (or further apart, once the
    sizes are known: `key_interval`, `copy_interval`). `copies`: how many such copies."""

    shown: tuple[tuple[int, bool], ...]
    hold: tuple[int, ...]
    copies: int = 0

    @classmethod
    def of(cls, spec: RenderSpec) -> Pictures:
        """A still card is one picture (its keyframe is repeated by copy). With captions, one
        picture a state, and a keyframe at least every SEGMENT_S seconds: a state that is itself a
        keyframe is shown again by copy; one that began between keyframes is encoded once more, as
        its first keyframe, and that one is copied. x264 on a 1080x1920 keyframe: about 23 ms each
        (measured), and 16 of the 37 pictures of the long quote's phrase captions were such repeats."""
        if not spec.captions:
            return cls(((0, True),), (round(spec.duration_s * spec.fps),))
        gop = spec.fps * SEGMENT_S
        shown: list[tuple[int, bool]] = []
        hold: list[int] = []
        copies, last_key = 0, -gop
        for state, first, last in spec.state_frames():
            at = first
            while at < last:
                key = at - last_key >= gop
                last_key = at if key else last_key
                end = min(last, last_key + gop)
                if key and shown and shown[-1] == (state, True):  # the same picture, keyed again: a copy
                    hold[-1] += end - at
                    copies += 1
                else:
                    shown.append((state, key))
                    hold.append(end - at)
                at = end
        return cls(tuple(shown), tuple(hold), copies)

    def number_at(self, at_s: float, fps: int) -> int:
        """The number, in the encoded stream, of the picture shown at `at_s` s, in the frame that
        ffmpeg's `-ss` finds there, the first at or after it (the stream opens with the flat pair:
        engine.render.h264.splice)."""
        frame = math.ceil(round(at_s * fps, 6))
        ends = itertools.accumulate(self.hold)
        return 2 + next((number for number, end in enumerate(ends) if frame < end), len(self.hold) - 1)


def steps(
    spec: RenderSpec, frames: Frames | None = None, on_pictures: OnPictures | None = None
) -> tuple[list[Step], list[Path]]:
    """The two runs (encode the pictures and the sound; splice and mux), and their scratch files.
    `frames` draws a caption state's card (or the still card); without it each is read from its PNG.
    `on_pictures` is given the encoded pictures (a raw H.264 stream, and what it holds: see
    `Pictures.number_at`) once they are made, before the mux: what it needs of them it takes before
    the attempt ends."""
    temp = Path(spec.temp_dir)
    encoded = temp / "pictures.h264"
    sound = encode_sound(spec, temp)
    pictures = Pictures.of(spec)
    if sum(pictures.hold) != round(spec.duration_s * spec.fps):
        raise RenderFailed("the caption states overlap or leave gaps; this is a bug, please report it")
    source = frames or card_files(spec)
    area = spec.width * spec.height
    black = b"\x10" * area + b"\x80" * (area // 2)  # flat: its P frame is all skip, whatever follows

    def feed_cards(pipe: BinaryIO, progress: Progress) -> None:
        pipe.write(black)
        pipe.write(black)
        ahead = AHEAD
        for index, (state, _key) in enumerate(pictures.shown):
            frame = source(state)  # drawn while x264 encodes the pictures before it
            if not progress.wait_for(2 + index - ahead):
                ahead += 1
            pipe.write(frame)

    def feed_stream(pipe: BinaryIO, _progress: Progress) -> None:
        found = h264_pictures(encoded.read_bytes())
        if spec.captions:
            repeat = copy_interval(spec, found, pictures, sum(path.stat().st_size for path in sound.files))
        else:
            repeat = key_interval(spec, first_picture_bytes(found))
        for frame in splice(found, list(pictures.hold), spec.fps, repeat):
            pipe.write(frame)

    keys = any_of([f"eq(n,{2 + index})" for index, (_, key) in enumerate(pictures.shown) if key])
    # The rate counts the copies: each keyframe gets the share of the video's bits it had when every
    # keyframe was encoded, so that the file, copies and all, stays within the cap as it did.
    rate = Fraction((len(pictures.shown) + pictures.copies) * 1000, max(1, round(spec.duration_s * 1000)))
    # With captions every change is encoded, and the rate holds those within the cap (copies of their
    # keyframes are kept within it by copy_interval). A still card's one keyframe is repeated by copy
    # (key_interval keeps the cap): it may take the video's whole share, no more, so a dense card in a
    # short video gets a coarser keyframe.
    if spec.captions:
        kbps, buffer_kbit = spec.capped_kbps(), spec.capped_kbps() * BUFFER_S
    else:
        kbps = spec.room_kbps()
        buffer_kbit = min(MAX_BUFFER_KBIT, round(kbps * spec.duration_s))
    encode = ffmpeg.command([
        # A raw input needs no probing: without these, ffmpeg reads 5 MB (eight 480p frames) first.
        "-thread_queue_size", "1", "-probesize", "32", "-analyzeduration", "0",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{spec.width}x{spec.height}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0", *sound.inputs,
        "-map", "0:v:0", "-c:v", "libx264", *H264_HIGH, "-level", level(spec.width, spec.height, spec.fps),
        "-preset", PRESET, "-tune", "stillimage", "-crf", str(CRF),
        "-maxrate", f"{kbps}k", "-bufsize", f"{round(buffer_kbit)}k",
        "-g", "100000", "-force_key_frames", f"expr:{keys}", "-x264-params", X264_SPLICE,
        "-threads", "1", "-f", "h264", str(encoded),
        *sound.outputs,
        "-progress", "pipe:1", "-stats_period", "0.002",
    ])  # fmt: skip
    # The subtitle track in the same mux: a run of its own after took 0.05 to 0.1 s, and a second check.
    after = 1 + sound.source.count("-i")  # the subtitles' input number: after the pictures and the sound
    given, track = subtitle_track(spec.subtitles, spec.lang, after) if spec.subtitles else ([], [])
    mux = ffmpeg.command([
        "-r", str(spec.fps), "-f", "h264", "-i", "pipe:0", *sound.source, *given, "-map", "0:v:0", "-map", "1:a:0",
        "-c", "copy", *track, "-t", f"{spec.duration_s:.3f}", *MP4_DELIVERY, spec.out_path,
    ])  # fmt: skip
    first = Step(encode, True, crash=spec.crash, feed=feed_cards, env=FFMPEG_ENV)

    def before_mux() -> None:
        if on_pictures is not None:
            on_pictures(encoded, pictures)
        sound.finish()

    return [first, Step(mux, True, feed=feed_stream, env=FFMPEG_ENV, before=before_mux)], [encoded, *sound.files]


def key_interval(spec: RenderSpec, keyframe_bytes: int) -> int:
    """Frames between a still card's keyframes: SEGMENT_S seconds, or longer, so that all of them
    together stay within the tier's video bitrate over the video (a card of 2,000 characters at
    1080x1920 has a 375 kB keyframe: 1.5 Mbit/s every 2 s, against 800k)."""
    frames = max(1, round(spec.duration_s * spec.fps))
    room_kbit = max(1, spec.room_kbps() - spec.skip_kbps()) * frames / spec.fps
    keys = max(1, math.floor(room_kbit * 1000 / max(1, keyframe_bytes * 8)))
    return max(spec.fps * SEGMENT_S, math.ceil(frames / keys))


def copy_interval(spec: RenderSpec, found: list[list[memoryview]], pictures: Pictures, sound_bytes: int) -> int:
    """Frames between copies of a captioned video's keyframes: every SEGMENT_S seconds, or further
    apart where the copies would take the file past the tier's video bitrate (x264's rate control
    never saw them: a card dense with text has large keyframes), with the sound as encoded (AAC may
    spend more than it is asked)."""
    every = spec.fps * SEGMENT_S
    coded = [sum(len(unit) + 4 for unit in picture) for picture in found[2:]]
    keys = [(size, hold) for size, (_, key), hold in zip(coded, pictures.shown, pictures.hold, strict=False) if key]
    room = (spec.video_kbps - MUX_KBPS - spec.skip_kbps()) * spec.duration_s * 1000 / 8 - sound_bytes - sum(coded)
    longest = max((hold for _, hold in keys), default=every)
    while every < longest and sum(size * ((hold - 1) // every) for size, hold in keys) > room:
        every += spec.fps // 2 or 1
    return every


def any_of(terms: list[str]) -> str:
    """`terms` summed as a balanced tree: ffmpeg refuses an expression nested over 100 deep, and a
    plain `a+b+c+...` of the keyframes of a captioned video over 200 s is."""
    if len(terms) <= 2:
        return "+".join(terms) or "0"
    half = len(terms) // 2
    return f"({any_of(terms[:half])})+({any_of(terms[half:])})"


def level(width: int, height: int, fps: int) -> str:
    """The lowest H.264 level for the frame size and rate."""
    blocks = macroblocks(width, height)
    for name, per_second, per_frame in _LEVELS:
        if blocks <= per_frame and blocks * fps <= per_second:
            return name
    return _LEVELS[-1][0]


def card_files(spec: RenderSpec) -> Frames:
    """The cards read from their PNG files (a caption state's, or the still card for state 0),
    as raw frames at the video's size."""

    def read(state: int) -> memoryview:
        from PIL import Image

        from engine.visuals.yuv import Frame

        path = Path(spec.captions[state][0] if spec.captions else spec.card_path)
        try:
            with Image.open(path) as card:
                card = card.convert("RGB") if card.mode != "RGB" else card
                size = (spec.width, spec.height)
                return Frame(card if card.size == size else card.resize(size)).data.data
        except OSError as exc:
            raise RenderFailed(f"could not read the card {path.name}: {exc.strerror or exc}") from None

    return read
