"""Each picture encoded once and held by skip frames (engine.render.still_loop, engine.render.h264):
the spliced stream decodes to the right picture at every frame, stays inside the tier's bitrate,
and the feed's failures are ours to name."""

import itertools
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageDraw

from engine.errors import RenderFailed
from engine.memory.watchdog import Progress, Step, run_step
from engine.render import h264
from engine.render.ffmpeg import command, ffmpeg_exe, probe
from engine.render.isolation import run_isolated
from engine.render.mp4box import inspect
from engine.render.quality import measure
from engine.render.spec import RenderSpec
from engine.render.still_loop import SEGMENT_S, Pictures, any_of, key_interval, level
from engine.render.verify import verify
from engine.visuals.card import Painter, _draw_text
from engine.visuals.text import QuoteText
from engine.visuals.yuv import yuv420
from tests.helpers import QUOTES

SIZE = (480, 272)


def spec_for(folder: Path, audio: Path, captions=(), duration_s: float = 6.0, **changes) -> RenderSpec:
    fields = dict(
        method="ffmpeg", card_path=str(folder / "card.png"), audio_path=str(audio), out_path=str(folder / "out.mp4"),
        temp_dir=str(folder), width=SIZE[0], height=SIZE[1], fps=24, video_kbps=300, audio_kbps=48,
        duration_s=duration_s, captions=captions,
    )  # fmt: skip
    return RenderSpec(**{**fields, **changes})


def decoded(video: Path, width: int, height: int) -> np.ndarray:
    """Every frame's Y plane."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frame = width * height * 3 // 2
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, frame)[:, : width * height].astype(int)


def test_every_frame_shows_its_state(tmp_path, speech_wav):
    """Six states of uneven length (one shorter than a keyframe interval, one longer): each decoded
    frame is closest to its own state's card, and the frame count is the duration's."""
    quote = QuoteText.of(QUOTES["medium"])
    painter = Painter(quote, SIZE)
    highlights = list(quote.phrases)[:6]
    bounds = [0.0, 0.3, 0.5, 1.0, 3.9, 4.4, 6.0]  # seconds; 3.9 s is longer than a 2 s keyframe interval
    captions = tuple(("", a, b) for a, b in itertools.pairwise(bounds))
    spec = spec_for(tmp_path, speech_wav, captions)
    luma = SIZE[0] * SIZE[1]
    cards = [np.frombuffer(yuv420(painter.picture(h)), dtype=np.uint8)[:luma] for h in highlights]
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: painter.frame(highlights[i]))
    assert run.status == "ok", run.error
    frames = decoded(Path(spec.out_path), *SIZE)
    assert len(frames) == 6 * 24
    for index, frame in enumerate(frames):
        state = next(i for i in range(6) if index < round(bounds[i + 1] * 24))
        closest = int(np.argmin([np.abs(frame - card).mean() for card in cards]))
        assert closest == state, f"frame {index} shows state {closest}, not {state}"
    verify(Path(spec.out_path), *SIZE, 6.0, 24)


def test_skip_frames_repeat_their_picture_exactly(tmp_path, speech_wav):
    """A held picture does not drift: the last frame of a state decodes to the same pixels as its first."""
    quote = QuoteText.of(QUOTES["short"])
    painter = Painter(quote, SIZE)
    spec = spec_for(tmp_path, speech_wav, (("", 0.0, 1.5), ("", 1.5, 6.0)), duration_s=6.0)
    highlights = list(quote.phrases)[:2]
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: painter.frame(highlights[i]))
    assert run.status == "ok", run.error
    frames = decoded(Path(spec.out_path), *SIZE)
    assert np.array_equal(frames[0], frames[35]) and np.array_equal(frames[36], frames[47])
    assert not np.array_equal(frames[35], frames[36])


def key_frames(video: Path) -> list[int]:
    """The numbers of the video's keyframes, as decoded."""
    log = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(video), "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return [int(n) for n in re.findall(r"\bn:\s*(\d+) .*?iskey:1", log)]


def test_keyframes_come_every_segment_and_at_the_start(tmp_path, speech_wav):
    """State 1 begins between keyframes: it is encoded again as a keyframe at 2 s, and that keyframe
    is copied at 4 s, not encoded a third time."""
    spec = spec_for(tmp_path, speech_wav, (("", 0.0, 0.5), ("", 0.5, 5.0), ("", 5.0, 6.0)))
    pictures = Pictures.of(spec)
    assert sum(pictures.hold) == 6 * 24
    assert pictures.shown == ((0, True), (1, False), (1, True), (2, False)) and pictures.copies == 1
    shades = [bytes([16 + 60 * i]) * (SIZE[0] * SIZE[1]) + b"\x80" * (SIZE[0] * SIZE[1] // 2) for i in range(3)]
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: shades[i])
    assert run.status == "ok", run.error
    assert key_frames(Path(spec.out_path)) == [0, SEGMENT_S * 24, 2 * SEGMENT_S * 24]
    assert Path(spec.out_path).read_bytes().count(b"x264 - core") == 1  # its notes once, not in each copy
    frames = decoded(Path(spec.out_path), *SIZE)
    assert all(np.array_equal(frames[n - 1], frames[n]) for n in (48, 96))  # a keyframe, the same picture


def test_a_still_card_within_the_cap_keeps_its_keyframe_interval_and_a_dense_one_stretches_it(tmp_path, speech_wav):
    spec = spec_for(tmp_path, speech_wav, video_kbps=800, audio_kbps=128, fps=30, duration_s=30.0)
    assert key_interval(spec, 100_000) == 60  # 0.4 Mbit every 2 s fits 800k
    assert key_interval(spec, 375_000) == 150  # 3 Mbit: 6 keyframes in 30 s at the 629k left
    short = spec_for(tmp_path, speech_wav, video_kbps=800, audio_kbps=128, fps=30, duration_s=3.5)
    assert key_interval(short, 185_000) == 105  # one keyframe: two would be 3 Mbit in 3.5 s


def test_keyframe_expressions_keep_every_term():
    terms = [f"eq(n,{i})" for i in range(300)]
    assert all(term in any_of(terms) for term in terms) and any_of([]) == "0"


def test_levels_follow_the_frame_size_and_rate():
    assert (level(1080, 1920, 30), level(1920, 1080, 60), level(854, 480, 24)) == ("4.0", "4.2", "3.0")


def test_the_splice_refuses_a_stream_it_cannot_read():
    with pytest.raises(RenderFailed, match="made 0 pictures for 1"):
        list(h264.splice(h264.pictures(b""), [10], 24))


def test_escaping_round_trips_and_frame_num_is_rewritten_in_place():
    raw = bytes([0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x05])
    assert h264.unescape(h264.escape(raw)) == raw and b"\x00\x00\x00" not in h264.escape(raw)
    assert h264.put(b"\xff\x00", 4, 8, 0x0F) == b"\xf0\xf0"


def test_the_painter_draws_what_a_whole_redraw_draws():
    """Drawing only the phrase's band, from the text's kept masks, gives the same pixels as drawing
    the whole card with Pillow's text, in every style and script direction, state after state."""
    for text, size in [(QUOTES["long"], (480, 854)), ("الحياة قصيرة، فابتسم ما دمت تملك أسنانا.", (854, 480))]:
        quote = QuoteText.of(text, "Someone")
        painter = Painter(quote, size)
        words = [(a, b, word) for a, b in quote.phrases for word in range(a, b)]
        for highlight in [*quote.phrases, *words]:
            whole = painter.base.copy()
            _draw_text(ImageDraw.Draw(whole), quote, painter.layout, size, painter.margin_y, painter.box_h, highlight)
            assert np.array_equal(np.asarray(whole), np.asarray(painter.picture(highlight))), highlight
            assert bytes(painter.frame(highlight)) == yuv420(whole), highlight


def test_our_yuv_is_ffmpegs_within_a_few_levels(tmp_path):
    painter = Painter(QuoteText.of(QUOTES["medium"], "Steve Jobs"), SIZE)
    card = tmp_path / "card.png"
    painter.picture(None).save(card)
    theirs = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(card), "-vf", f"scale={SIZE[0]}:{SIZE[1]}:flags=bicubic,format=yuv420p",
         "-f", "rawvideo", "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    ours = painter.frame(None)
    difference = np.abs(np.frombuffer(theirs, dtype=np.uint8).astype(int) - np.frombuffer(ours, dtype=np.uint8))
    assert difference.max() <= 3 and difference.mean() < 0.3  # chroma is filtered a little differently


def test_a_feed_that_fails_names_its_reason_and_stops_the_command(tmp_path):
    def feed(pipe, progress: Progress) -> None:
        pipe.write(b"\x10" * (64 * 64 * 3 // 2))
        raise RenderFailed("the card could not be drawn")

    argv = command(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x64", "-i", "pipe:0", str(tmp_path / "out.mp4")])
    status, error, _ = run_step(Step(argv, True, feed=feed), 4000, lambda *_: None, 60, 60)
    assert (status, error) == ("failed", "the card could not be drawn")


def test_a_feed_never_waits_forever_on_a_command_that_reports_nothing(tmp_path):
    """A command without `-progress` never says how far it is: the writer waits at most its stall
    time per frame, and the run ends."""
    frame = b"\x10" * (64 * 64 * 3 // 2)

    def feed(pipe, progress: Progress) -> None:
        for index in range(3):
            progress.wait_for(index + 5, stall_s=0.2)
            pipe.write(frame)

    argv = command(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x64", "-i", "pipe:0", str(tmp_path / "out.mp4")])
    status, error, _ = run_step(Step(argv, True, feed=feed), 4000, lambda *_: None, 60, 60)
    assert (status, error) == ("ok", None)
    assert probe(tmp_path / "out.mp4").duration_s > 0


def test_the_sequence_header_is_read_and_rewritten_in_place(tmp_path):
    """x264's own SPS: its frame_num width, its timing (rewritten to the video's rate), and a slice's
    frame_num, read back after the rewrite."""
    out = tmp_path / "three.h264"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:r=5", "-frames:v", "3",
         "-c:v", "libx264", "-g", "100000", "-x264-params", "bframes=0:stitchable=1", str(out)], check=True,
    )  # fmt: skip
    units = h264.nal_units(out.read_bytes())
    sps = next(u for u in units if u[0] & 31 == h264.SPS)
    facts = h264.sequence_facts(sps)
    assert facts.frame_num_bits >= 4 and facts.timing_at is not None and not facts.colour_planes
    rewritten = h264.unescape(h264.with_frame_rate(sps, facts, 30)[1:])
    bits = h264._Bits(rewritten)
    bits.u(facts.timing_at)
    assert (bits.u(32), bits.u(32)) == (1, 60)  # one tick a field, two fields a frame: 30 fps
    p_slice = next(u for u in units if u[0] & 31 == h264.SLICE)
    changed = h264.unescape(h264.with_frame_num(p_slice, facts, 9)[1:])
    bits = h264._Bits(changed)
    bits.ue(), bits.ue(), bits.ue()
    assert bits.u(facts.frame_num_bits) == 9


def test_a_captioned_video_over_200_s_has_all_its_keyframes(tmp_path, speech_wav):
    """125 keyframes: more than ffmpeg takes as a flat sum in one expression."""
    size, seconds = (96, 64), 250.0
    captions = tuple(("", i * seconds / 5, (i + 1) * seconds / 5) for i in range(5))
    spec = spec_for(tmp_path, speech_wav, captions, duration_s=seconds, width=size[0], height=size[1])
    shades = [bytes([16 + 40 * i]) * (size[0] * size[1]) + b"\x80" * (size[0] * size[1] // 2) for i in range(5)]
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: shades[i])
    assert run.status == "ok", run.error
    assert len(key_frames(Path(spec.out_path))) == 125
    assert len(decoded(Path(spec.out_path), *size)) == 250 * 24


@pytest.mark.parametrize("seconds", [4.2, 30.0])
@pytest.mark.parametrize("rates", [(800, 128, (1080, 1920)), (300, 48, (480, 854)), (200, 32, (480, 854))])
def test_a_dense_still_card_stays_inside_the_cap(tmp_path, speech_wav, seconds, rates):
    """A card full of text has a large keyframe: over a long video its interval stretches, and in a
    short one it is coarser, so the whole file keeps the tier's rate (sound as long as the video).
    At the low and emergency tiers the sound is a larger share of the file."""
    video_kbps, audio_kbps, (width, height) = rates
    quote = QuoteText.of(QUOTES["long"] + " " + QUOTES["long"])
    Painter(quote, (width, height)).picture(None).save(tmp_path / "card.png")
    sound = tmp_path / "sound.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", "-1", "-i", str(speech_wav), "-t", str(seconds),
                    str(sound)], check=True)  # fmt: skip
    spec = spec_for(
        tmp_path, sound, width=width, height=height, fps=30, video_kbps=video_kbps, audio_kbps=audio_kbps,
        duration_s=seconds,
    )  # fmt: skip
    run = run_isolated(spec, budget_mb=4000)
    assert run.status == "ok", run.error
    found = probe(Path(spec.out_path))
    assert found.size_bytes * 8 / 1000 / found.duration_s <= video_kbps
    assert inspect(Path(spec.out_path)).constant_frame_rate
    assert Path(spec.out_path).read_bytes().count(b"x264 - core") == 1  # x264's notes once, not in each copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.png", "out.mp4", "sound.wav"]  # scratch removed


@pytest.mark.parametrize("rates", [(800, 128, (1080, 1920)), (200, 32, (480, 854))])
def test_a_dense_captioned_card_stays_inside_the_cap(tmp_path, speech_wav, rates):
    """x264's rate control never sees the copies of a keyframe: where copies every SEGMENT_S s of a card
    dense with text would break the cap, they come further apart, and the file keeps the tier's rate."""
    video_kbps, audio_kbps, (width, height) = rates
    quote = QuoteText.of(QUOTES["long"] + " " + QUOTES["long"])
    painter = Painter(quote, (width, height))
    highlights = list(quote.phrases)[:2]
    sound = tmp_path / "sound.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", "-1", "-i", str(speech_wav), "-t", "30",
                    str(sound)], check=True)  # fmt: skip
    spec = spec_for(
        tmp_path, sound, (("", 0.0, 15.0), ("", 15.0, 30.0)), width=width, height=height, fps=30,
        video_kbps=video_kbps, audio_kbps=audio_kbps, duration_s=30.0,
    )  # fmt: skip
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: painter.frame(highlights[i]))
    assert run.status == "ok", run.error
    found = probe(Path(spec.out_path))
    assert found.size_bytes * 8 / 1000 / found.duration_s <= video_kbps
    keys = key_frames(Path(spec.out_path))
    assert keys[0] == 0 and max(b - a for a, b in itertools.pairwise(keys)) > SEGMENT_S * 30  # stretched


def test_the_pictures_measured_as_they_are_muxed_are_the_videos(tmp_path, speech_wav):
    """The pipeline measures the picture quality on the encoded stream while it is muxed: the figures
    equal the delivered video's at the same time, in a state's first picture, its keyframe and a copy."""
    quote = QuoteText.of(QUOTES["medium"])
    painter = Painter(quote, SIZE)
    highlights = list(quote.phrases)[:3]
    spec = spec_for(tmp_path, speech_wav, (("", 0.0, 1.5), ("", 1.5, 4.5), ("", 4.5, 6.0)))
    kept = tmp_path / "kept.h264"
    run = run_isolated(spec, budget_mb=4000, frames=lambda i: painter.frame(highlights[i]),
                       on_pictures=lambda stream, _held: os.link(stream, kept))  # fmt: skip
    assert run.status == "ok", run.error
    pictures = Pictures.of(spec)
    for state, at in ((0, 1.0), (1, 1.8), (1, 2.5), (1, 4.2), (2, 5.0)):
        card = tmp_path / f"card-{state}.png"
        painter.picture(highlights[state]).save(card)
        from_stream = measure(kept, card, at, pictures.number_at(at, spec.fps))
        assert from_stream is not None and from_stream.psnr_db > 30, (state, at)
        assert from_stream == measure(Path(spec.out_path), card, at), (state, at)
