"""Just enough of H.264's Annex B byte stream to splice a video out of encoded pictures.

A captioned card changes only when a caption does. So each state is encoded once (x264), and
the frames between changes are one all-skip P frame repeated: it copies its reference and
carries no picture, so one made from a flat frame serves every state. Copies differ only in
`frame_num`, a fixed-width field of the slice header, rewritten in place; the SPS's timing is
rewritten the same way, since the states were encoded at their own (slower) rate.

Only what x264 writes with our settings is handled (one slice a picture, picture order from
`frame_num`); anything else is refused with RenderFailed, and the chain falls back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import RenderFailed

SLICE, IDR, SEI, SPS, PPS = 1, 5, 6, 7, 8  # NAL unit types
_START = re.compile(b"\x00\x00\x01")
_NEEDS_ESCAPE = re.compile(b"\x00\x00(?=[\x00-\x03])")
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def nal_units(stream: bytes) -> list[memoryview]:
    """The NAL units of an Annex B stream, start codes removed: views into it, not copies (a long
    captioned video's stream is megabytes)."""
    view = memoryview(stream)
    starts = [m.end() for m in _START.finditer(stream)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(stream)
        while index + 1 < len(starts) and end > start and stream[end - 1] == 0:
            end -= 1  # the zero byte of a four-byte start code
        if end > start:
            units.append(view[start:end])
    return units


def pictures(stream: bytes) -> list[list[memoryview]]:
    """The stream's access units, one a picture: the NAL units up to and including its slice."""
    units: list[list[memoryview]] = []
    current: list[memoryview] = []
    for unit in nal_units(stream):
        current.append(unit)
        if unit[0] & 31 in (SLICE, IDR):
            units.append(current)
            current = []
    return units


def unescape(payload: bytes | memoryview) -> bytes:
    """The raw bits: the emulation prevention bytes (00 00 03) taken out."""
    return bytes(payload).replace(b"\x00\x00\x03", b"\x00\x00")


def escape(raw: bytes) -> bytes:
    """The raw bits made safe to carry: 03 after any two zero bytes followed by a byte up to 03,
    and after a unit's last byte when it is zero (H.264 7.4.1)."""
    escaped = _NEEDS_ESCAPE.sub(b"\x00\x00\x03", raw)
    return escaped + b"\x03" if escaped.endswith(b"\x00") else escaped


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            if self.at >= 8 * len(self.data):
                raise RenderFailed("the encoded caption stream ended inside a header")
            value = (value << 1) | ((self.data[self.at >> 3] >> (7 - (self.at & 7))) & 1)
            self.at += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


def put(raw: bytes, at: int, count: int, value: int) -> bytes:
    """`raw` with `count` bits from bit `at` replaced by `value`."""
    out = bytearray(raw)
    for offset in range(count):
        byte, bit = divmod(at + offset, 8)
        if (value >> (count - 1 - offset)) & 1:
            out[byte] |= 0x80 >> bit
        else:
            out[byte] &= ~(0x80 >> bit) & 0xFF
    return bytes(out)


@dataclass(frozen=True)
class SequenceFacts:
    frame_num_bits: int
    colour_planes: bool  # separate_colour_plane_flag: a plane id precedes frame_num
    timing_at: int | None  # bit offset of num_units_in_tick in the SPS payload


def sequence_facts(sps: bytes | memoryview) -> SequenceFacts:
    """What splicing needs from a sequence parameter set (NAL unit with its header byte)."""
    bits = _Bits(unescape(sps[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    planes = False
    if profile in _HIGH_PROFILES:
        if bits.ue() == 3:  # chroma_format_idc 4:4:4
            planes = bool(bits.u(1))
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, transform bypass
        if bits.u(1):
            raise RenderFailed("the caption encode wrote scaling matrices, which splicing does not read")
    frame_num_bits = bits.ue() + 4
    if bits.ue() != 2:
        raise RenderFailed("the caption encode orders pictures by count, which splicing does not rewrite")
    bits.ue(), bits.u(1), bits.ue(), bits.ue()  # references, gaps, width, height in macroblocks
    if not bits.u(1):  # frame_mbs_only
        bits.u(1)
    bits.u(1)  # direct_8x8_inference
    if bits.u(1):  # cropping
        bits.ue(), bits.ue(), bits.ue(), bits.ue()
    timing_at = None
    if bits.u(1):  # VUI
        if bits.u(1) and bits.u(8) == 255:  # aspect ratio, extended
            bits.u(32)
        if bits.u(1):  # overscan
            bits.u(1)
        if bits.u(1):  # video signal type
            bits.u(4)
            if bits.u(1):
                bits.u(24)
        if bits.u(1):  # chroma location
            bits.ue(), bits.ue()
        if bits.u(1):
            timing_at = bits.at
    return SequenceFacts(frame_num_bits, planes, timing_at)


def with_frame_rate(sps: bytes | memoryview, facts: SequenceFacts, fps: int) -> bytes:
    """The SPS saying `fps` frames a second."""
    if facts.timing_at is None:
        return bytes(sps)
    raw = put(put(unescape(sps[1:]), facts.timing_at, 32, 1), facts.timing_at + 32, 32, 2 * fps)
    return bytes(sps[:1]) + escape(raw)


def with_frame_num(unit: bytes | memoryview, facts: SequenceFacts, frame_num: int) -> bytes:
    """The slice NAL unit with its `frame_num` set."""
    raw = unescape(unit[1:])
    bits = _Bits(raw)
    bits.ue(), bits.ue(), bits.ue()  # first_mb_in_slice, slice_type, pic_parameter_set_id
    if facts.colour_planes:
        bits.u(2)
    value = frame_num % (1 << facts.frame_num_bits)
    return bytes(unit[:1]) + escape(put(raw, bits.at, facts.frame_num_bits, value))


def first_picture_bytes(found: list[list[memoryview]]) -> int:
    """The size of the first picture after the flat pair (see `splice`): a still card's keyframe."""
    return sum(len(unit) + 4 for unit in found[2]) if len(found) > 2 else 0


def splice(found: list[list[memoryview]], hold: list[int], fps: int, repeat_key: int | None = None) -> Iterator[bytes]:
    """The Annex B stream that shows encoded picture k for `hold[k]` frames.

    `found` is x264's output, read by `pictures`: a flat frame twice (an IDR, then the all-skip P
    frame) followed by the pictures; each is shown once and held by copies of the skip frame. With
    `repeat_key`, a keyframe is shown again by copy every `repeat_key` frames of its hold."""
    if len(found) != len(hold) + 2:
        made = max(0, len(found) - 2)
        raise RenderFailed(f"the picture encode made {made} pictures for {len(hold)}; try another method")
    sps = next((unit for unit in found[0] if unit[0] & 31 == SPS), None)
    if sps is None:
        raise RenderFailed("the picture encode wrote no sequence parameter set")
    facts = sequence_facts(sps)
    skip = found[1]
    if len(skip) != 1 or skip[0][0] & 31 != SLICE:
        raise RenderFailed("the picture encode's hold frame is not one P slice")
    # The first picture carries the headers (x264 repeats them before every keyframe; taken from the
    # flat pair's if not) and x264's SEI, its version and settings, which tools and tests read.
    shown: list[list[bytes | memoryview]] = [list(picture) for picture in found[2:]]
    if shown:
        headers = [u for u in shown[0] if u[0] & 31 != SLICE and u[0] & 31 != IDR] or [
            u for u in found[0] if u[0] & 31 in (SPS, PPS)
        ]
        notes = [unit for unit in found[0] if unit[0] & 31 == SEI]
        shown[0] = [*headers, *notes, found[2][-1]]
    # The sequence header says the video's rate: rewritten once, not at each keyframe shown again.
    shown = [[with_frame_rate(u, facts, fps) if u[0] & 31 == SPS else u for u in picture] for picture in shown]
    copies: dict[int, bytes] = {}
    frame_num = 0
    unit: bytes | memoryview
    for picture, frames in zip(shown, hold, strict=True):
        key = picture[-1][0] & 31 == IDR
        for index in range(frames):
            again = index == 0 or (key and repeat_key is not None and index % repeat_key == 0)
            out = []
            for unit in picture if again else skip:
                kind = unit[0] & 31
                if kind == SEI and index > 0:  # x264's notes once, not in each copy (a few hundred bytes)
                    continue
                if kind == IDR:
                    frame_num = 0
                elif kind == SLICE:
                    frame_num += 1
                    if not again:  # the skip frame: one copy per frame_num value, made once
                        slot = frame_num % (1 << facts.frame_num_bits)
                        unit = copies.get(slot) or copies.setdefault(slot, with_frame_num(unit, facts, frame_num))
                    else:
                        unit = with_frame_num(unit, facts, frame_num)
                out.append(b"\x00\x00\x00\x01" + unit)
            yield b"".join(out)
