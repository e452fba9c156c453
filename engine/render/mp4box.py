"""What an MP4's boxes say about the platforms' upload specifications, read from the file itself
(ffmpeg's banner does not show edit lists, box order or sample timing).

Reads box headers and the few small boxes it needs (hdlr, stts, avcC); media data is skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}
_HIGH = 100  # H.264 profile_idc


@dataclass
class Track:
    handler: str = ""  # vide, soun, sbtl (mov_text), text
    edit_lists: int = 0
    sample_deltas: list[int] = field(default_factory=list)  # stts: each distinct run's delta
    h264_profile: int | None = None
    timescale: int = 0


@dataclass(frozen=True)
class Mp4Facts:
    top_level: tuple[str, ...]  # box order: ftyp, moov, mdat, ...
    tracks: tuple[Track, ...]

    @property
    def moov_first(self) -> bool:
        order = list(self.top_level)
        return "moov" in order and "mdat" in order and order.index("moov") < order.index("mdat")

    @property
    def edit_lists(self) -> int:
        return sum(t.edit_lists for t in self.tracks)

    def track(self, handler: str) -> Track | None:
        return next((t for t in self.tracks if t.handler == handler), None)

    @property
    def constant_frame_rate(self) -> bool:
        video = self.track("vide")
        return video is not None and len(set(video.sample_deltas)) == 1

    @property
    def frame_rate(self) -> float:
        video = self.track("vide")
        if video is None or not video.sample_deltas:
            return 0.0
        return video.timescale / video.sample_deltas[0]

    @property
    def h264_high(self) -> bool:
        video = self.track("vide")
        return video is not None and video.h264_profile == _HIGH


def inspect(path: Path) -> Mp4Facts:
    with path.open("rb") as f:
        size = path.stat().st_size
        top = []
        tracks: list[Track] = []
        for kind, start, end in _boxes(f, 0, size):
            top.append(kind.decode("latin-1"))
            if kind == b"moov":
                _walk(f, start, end, tracks, None)
    return Mp4Facts(tuple(top), tuple(tracks))


def _boxes(f: BinaryIO, start: int, end: int):
    """(type, payload start, box end) of each box in [start, end)."""
    at = start
    while at + 8 <= end:
        f.seek(at)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - at
        if size < header:
            break
        yield kind, at + header, at + size
        at += size


def _walk(f: BinaryIO, start: int, end: int, tracks: list[Track], track: Track | None) -> None:
    for kind, payload, box_end in _boxes(f, start, end):
        if kind == b"trak":
            track = Track()
            tracks.append(track)
        if kind in _CONTAINERS:
            _walk(f, payload, box_end, tracks, track)
        elif track is None:
            continue
        elif kind == b"elst":
            track.edit_lists += 1
        elif kind == b"hdlr":
            f.seek(payload + 8)  # version/flags, pre_defined
            track.handler = f.read(4).decode("latin-1")
        elif kind == b"mdhd":
            f.seek(payload)
            version = f.read(1)[0]
            f.seek(payload + (20 if version == 1 else 12))
            track.timescale = struct.unpack(">I", f.read(4))[0]
        elif kind == b"stts":
            f.seek(payload + 4)
            (count,) = struct.unpack(">I", f.read(4))
            runs = [struct.unpack(">II", f.read(8)) for _ in range(min(count, 10_000))]
            # The last sample's delta may differ (it only says how long the last frame shows).
            deltas = [delta for _, delta in runs]
            track.sample_deltas = deltas[:-1] if len(deltas) > 1 and runs[-1][0] == 1 else deltas
        elif kind == b"stsd":
            _sample_entry(f, payload, box_end, track)


def _sample_entry(f: BinaryIO, start: int, end: int, track: Track) -> None:
    f.seek(start + 8)  # version/flags, entry count
    for kind, payload, box_end in _boxes(f, start + 8, end):
        if kind == b"avc1":
            for child, child_payload, _ in _boxes(f, payload + 78, box_end):  # past the visual sample entry
                if child == b"avcC":
                    f.seek(child_payload + 1)
                    track.h264_profile = f.read(1)[0]
