"""A mono AAC-LC stream made stereo in its bitstream, with both channels the mono one, bit for bit.

The speech is mono, and the platforms' specifications and players expect stereo. ffmpeg's AAC
encoder given the same signal twice codes both channels; given it once, it codes one, in less
time and with all the bitrate for it. Measured on the 529-character quote (32 s, fast coder): 0.57 s
for both channels, 0.33 s for one. Asked for less, so as to spend no more than the two-channel
encode (`engine.render.spec.one_channel_kbps`), against the source: 45.9 dB SNR at 128k instead of
44.5, 29.7 at 64k instead of 25.8, 24.5 at 48k instead of 19.7, 15.8 at 32k instead of 13.6.

Each frame's single channel element (SCE) becomes a channel pair (CPE) with a common window and
mid/side coding on every band: the mid channel is the mono one as coded, the side channel all zero
bands, so the decoder makes left = right = mid. What it adds: the side channel's gain and one
section of zeros, about 30 bits a frame (1.4 kbit/s). Two of AAC's tools would decode apart on the
two channels, and MONO_AAC leaves them off: perceptual noise substitution (a noise band is not
mid/side decoded; a band coded so is refused here) and temporal noise shaping (applied to each
channel after mid/side, from its own channel's data; not looked for here, as its data follows the
scale factors, which would have to be decoded). Without them the mono encode measured no worse
against the source (44.9 dB with them, 47.8 without, both asked for 128k). ISO/IEC 14496-3, 4.4.2 (syntax) and
4.6.8.1 (M/S).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from engine.errors import RenderFailed

# ffmpeg's options for the mono encode this module turns stereo: no noise substitution or temporal
# noise shaping (see above), and no encoder tag in a fill element every 256 frames (`bitexact`).
MONO_AAC = ["-aac_pns", "0", "-aac_tns", "0", "-flags:a", "+bitexact"]

_SCE, _CPE, _END = 0, 1, 7
_EIGHT_SHORT = 2
_NOISE_OR_INTENSITY = (13, 14, 15)  # codebooks with no mid/side decoding
_ALL_BANDS_MS = 2  # ms_mask_present: mid/side on every band


class _Bits:
    """Fields read from the front of a bit string held as an int."""

    def __init__(self, value: int, length: int) -> None:
        self.value, self.left = value, length

    def take(self, width: int) -> int:
        if width > self.left:
            raise ValueError("the frame ends inside a field")
        self.left -= width
        return (self.value >> self.left) & ((1 << width) - 1)

    def rest(self) -> tuple[int, int]:
        """What is not read yet, as (value, length)."""
        return self.value & ((1 << self.left) - 1), self.left


def make_stereo(path: Path) -> None:
    """Rewrite the mono ADTS file at `path`, encoded with MONO_AAC, as stereo; RenderFailed if it is
    not one SCE a frame, or has a noise band (nothing is written then). An OSError is our own read's
    or write's, which the generation reports as such (a full disk: engine.pipeline)."""
    try:
        made = stereo(path.read_bytes())
    except ValueError as exc:
        raise RenderFailed(
            f"the sound's AAC encode was not the mono stream expected ({exc}); use the ffmpeg that "
            "imageio-ffmpeg installs (unset IMAGEIO_FFMPEG_EXE), or report it"
        ) from None
    path.write_bytes(made)


def stereo(data: bytes) -> bytes:
    """ADTS frames of one SCE each, as ADTS frames of one CPE each; ValueError if they are not."""
    out = bytearray()
    for header, payload in _frames(data):
        body = _pair(payload)
        length = 7 + len(body)
        # Channel configuration 2; the new frame length; buffer fullness 0x7FF (variable rate).
        out += bytes((header[0], header[1], header[2] & 0xFE, (header[3] & 0x3C) | 0x80 | (length >> 11),
                      (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC))  # fmt: skip
        out += body
    return bytes(out)


def _frames(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    at = 0
    while at < len(data):
        header = data[at : at + 7]
        if len(header) < 7 or header[0] != 0xFF or header[1] & 0xF0 != 0xF0:
            raise ValueError(f"no ADTS frame at byte {at}")
        if not header[1] & 1 or header[6] & 3:
            raise ValueError("a frame with a CRC or several blocks")
        if (header[2] >> 6) + 1 != 2 or ((header[2] & 1) << 2 | header[3] >> 6) != 1:
            raise ValueError("not a mono AAC-LC frame")
        length = (header[3] & 3) << 11 | header[4] << 3 | header[5] >> 5
        if length <= 7 or at + length > len(data):
            raise ValueError(f"a frame of {length} bytes at byte {at}")
        yield header, data[at + 7 : at + length]
        at += length


def _pair(payload: bytes) -> bytes:
    """One frame's raw data block, SCE then END, as CPE then END."""
    value = int.from_bytes(payload, "big")
    if value == 0:
        raise ValueError("an empty frame")
    padding = (value & -value).bit_length() - 1  # the zeros after END, to the byte
    if (value >> padding) & 7 != _END:
        raise ValueError("a frame that does not end with END")
    bits = _Bits(value >> (padding + 3), len(payload) * 8 - padding - 3)
    if bits.take(3) != _SCE:
        raise ValueError("a frame that is not one single channel element")
    tag, gain = bits.take(4), bits.take(8)
    reserved, window, shape = bits.take(1), bits.take(2), bits.take(1)
    if window == _EIGHT_SHORT:
        bands, grouping = bits.take(4), bits.take(7)
        info = [(reserved, 1), (window, 2), (shape, 1), (bands, 4), (grouping, 7)]
        groups, width = 8 - bin(grouping).count("1"), 3  # a set bit joins a window to the group before
    else:
        bands, predictor = bits.take(6), bits.take(1)
        if predictor:
            raise ValueError("prediction, which AAC-LC does not have")
        info = [(reserved, 1), (window, 2), (shape, 1), (bands, 6), (0, 1)]
        groups, width = 1, 5
    rest, rest_length = bits.rest()
    _check_sections(_Bits(rest, rest_length), groups, bands, width)
    fields = [(_CPE, 3), (tag, 4), (1, 1), *info, (_ALL_BANDS_MS, 2), (gain, 8)]
    side = [(gain, 8)]  # no band has a scale factor: its gain is never used
    for _ in range(groups if bands else 0):
        side += [(0, 4), *_section_length(bands, width)]  # one section of zeros over every band
    side += [(0, 1), (0, 1), (0, 1)]  # no pulse, TNS or gain control data
    out, length = 0, 0
    for field, size in fields:
        out, length = out << size | field, length + size
    out, length = out << rest_length | rest, length + rest_length
    for field, size in [*side, (_END, 3)]:
        out, length = out << size | field, length + size
    pad = -length % 8
    return (out << pad).to_bytes((length + pad) // 8, "big")


def _check_sections(bits: _Bits, groups: int, bands: int, width: int) -> None:
    """The mid channel's sections: whole, and none in a codebook the side channel cannot mirror."""
    escape = (1 << width) - 1
    for _ in range(groups):
        band = 0
        while band < bands:
            codebook, length = bits.take(4), 0
            while (step := bits.take(width)) == escape:
                length += escape
            band += length + step
            if codebook in _NOISE_OR_INTENSITY:
                raise ValueError(f"a band coded with codebook {codebook} (noise or intensity)")
        if band != bands:
            raise ValueError("sections that overrun the bands")


def _section_length(bands: int, width: int) -> list[tuple[int, int]]:
    escape = (1 << width) - 1
    return [(escape, width)] * (bands // escape) + [(bands % escape, width)]
