"""What a shared video must be (DESIGN.md): every output, preset or not, probed for the platforms'
upload specifications; presets; the cover and the subtitles beside the MP4 and inside it."""

import itertools
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from engine.models import Request
from engine.pipeline import generate
from engine.render import ffmpeg
from engine.render.ffmpeg import probe
from engine.render.mp4box import inspect
from engine.render.verify import shareable
from engine.visuals.subtitles import cues
from tests.helpers import QUOTES


def assert_shareable(video: Path, fps: float) -> None:
    found = probe(video)
    assert (found.video_codec, found.video_profile, found.pixel_format) == ("h264", "High", "yuv420p")
    assert (found.audio_codec, found.audio_profile, found.audio_rate) == ("aac", "LC", 48000)
    facts = inspect(video)
    assert facts.moov_first and facts.edit_lists == 0 and facts.constant_frame_rate, facts
    assert facts.frame_rate == pytest.approx(fps)
    # x264 writes its settings into the stream: without B-frames (or with open_gop=0) every GOP is closed.
    settings = re.findall(rb"x264 - core [^\x00]*", video.read_bytes())
    assert settings and all(b" bframes=0 " in s or b" open_gop=0 " in s for s in settings)
    assert shareable(video) == []


@pytest.mark.parametrize("method", ["ffmpeg", "moviepy", "emergency"])
@pytest.mark.parametrize("captions", [False, True], ids=["still", "captions"])
def test_every_method_meets_the_upload_specifications(settings, method, captions):
    request = Request(QUOTES["short"], tier="low", method=method, fallback=False, captions=captions)
    result = generate(request, settings)
    assert result.method == method
    assert_shareable(result.output, 24)


def test_the_checks_can_fail(tmp_path):
    """A file made the way ffmpeg does by default: edit lists (for the AAC priming), moov at the end."""
    made = tmp_path / "default.mp4"
    ffmpeg.run([
        "-f", "lavfi", "-i", "color=c=navy:s=320x240:r=24", "-f", "lavfi", "-i", "sine=f=440",
        "-t", "2", "-c:v", "libx264", "-c:a", "aac", str(made),
    ])  # fmt: skip
    assert set(shareable(made)) == {"the moov atom is not at the front", "it has 2 edit list(s)"}  # one per track


@pytest.mark.parametrize(
    "preset, tier, size, fps",
    [
        ("reels", "high", (1080, 1920), 30),
        ("reels", "low", (480, 854), 30),
        ("youtube", "low", (854, 480), 24),
        ("square", "low", (480, 480), 24),
    ],
)
def test_presets_set_the_frame_and_the_tier_still_sets_the_size(settings, preset, tier, size, fps):
    result = generate(Request(QUOTES["short"], preset=preset, tier=tier, aspect="16:9"), settings)
    assert (result.width, result.height, result.fps, result.preset) == (*size, fps, preset)
    assert_shareable(result.output, fps)


def test_a_cover_is_written_beside_every_video(settings):
    result = generate(Request(QUOTES["short"], tier="low", aspect="9:16"), settings)
    assert result.cover == result.output.with_suffix(".jpg") and result.subtitles == ()
    with Image.open(result.cover) as cover:
        assert (cover.format, cover.size) == ("JPEG", (480, 854))
    assert inspect(result.output).track("sbtl") is None  # no subtitles asked, no track
    assert not result.output.with_suffix(".srt").exists() and not result.output.with_suffix(".vtt").exists()


@pytest.mark.parametrize(("method", "quote"), [("ffmpeg", "long"), ("moviepy", "medium")])
def test_subtitles_beside_the_video_and_inside_it_carry_the_same_cues(settings, tmp_path, method, quote):
    """The FFmpeg method muxes the track as it renders; MoviePy's video gets it after. Either way the
    first attempt's video is delivered (a missing track fails the check, and a fallback would follow)."""
    result = generate(Request(QUOTES[quote], tier="low", subtitles=True, lang="en", method=method), settings)
    assert [(a.method, a.status) for a in result.attempts] == [(method, "ok")]
    srt, vtt = result.subtitles
    assert (srt, vtt) == (result.output.with_suffix(".srt"), result.output.with_suffix(".vtt"))
    assert vtt.read_text().startswith("WEBVTT\n\n")
    # ffmpeg reads all three back to SRT: the file beside, the WebVTT, and the MP4's mov_text track.
    read = {}
    for name, source, stream in (("srt", srt, "0"), ("vtt", vtt, "0"), ("track", result.output, "0:s:0")):
        out = tmp_path / f"{name}.srt"
        ffmpeg.run(["-i", str(source), "-map", stream, "-c:s", "srt", str(out)])
        read[name] = parse_srt(out.read_text())
    assert read["srt"] == read["vtt"] == read["track"]
    texts = [text for _, _, text in read["srt"]]
    assert " ".join(texts).split() == QUOTES[quote].split()  # every word, in order, once
    starts = [start for start, _, _ in read["srt"]]
    assert starts == sorted(starts) and read["srt"][-1][1] == pytest.approx(result.duration_s, abs=0.05)
    banner = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-i", str(result.output)], capture_output=True, text=True
    )
    assert "(eng): Subtitle: mov_text" in banner.stderr and inspect(result.output).track("sbtl") is not None
    assert_shareable(result.output, 24)


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    found = []
    for block in text.strip().split("\n\n"):
        lines = block.strip().splitlines()
        begin, end = (stamp(part) for part in lines[1].split(" --> "))
        found.append((begin, end, " ".join(lines[2:])))
    return found


def stamp(text: str) -> float:
    hours, minutes, rest = text.strip().replace(",", ".").split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(rest), 2)


def test_cues_follow_the_phrases(tmp_path):
    from engine.speech.base import SpeechOrder
    from engine.speech.espeak import EspeakEngine
    from engine.visuals.text import QuoteText

    quote = QuoteText.of(QUOTES["medium"])
    speech = EspeakEngine().synthesize(SpeechOrder(QUOTES["medium"], "en", tmp_path))
    found = cues(quote, speech)
    assert [c.text for c in found] == [quote.line(a, b) for a, b in quote.phrases]
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(found))


def test_music_and_word_captions_keep_the_ffmpeg_method_near_a_still_card(settings):
    """Peak memory at 1080p with a bed and word captions (28 states) within 15% of the plain still
    card (the larger of three runs each, interleaved: a sample that misses a peak of a few
    milliseconds only reads lower, and runs of one render move by up to a quarter on a busy machine).
    The mix is made before the render, by the app."""
    plain = Request(QUOTES["medium"], preset="reels", tier="high", method="ffmpeg", fallback=False)
    dressed = replace(plain, captions=True, caption_style="word", music="pad", subtitles=True)
    peaks: dict[str, list[float]] = {"plain": [], "dressed": []}
    for _ in range(3):
        for name, request in (("plain", plain), ("dressed", dressed)):
            peaks[name].append(generate(request, settings).peak_rss_mb)
    assert max(peaks["dressed"]) <= 1.15 * max(peaks["plain"]), peaks


def test_subtitles_end_where_an_emergency_cut_ends_the_video(settings, tmp_path):
    long = QUOTES["long"] + " " + QUOTES["long"]  # over 60 s of offline speech: the emergency render cuts it
    result = generate(Request(long, method="emergency", subtitles=True), settings)
    assert result.duration_s == pytest.approx(60, abs=0.3) and "cut to 60 s" in " ".join(result.notes)
    srt, _ = result.subtitles
    out = tmp_path / "track.srt"
    ffmpeg.run(["-i", str(result.output), "-map", "0:s:0", "-c:s", "srt", str(out)])
    for cues_read in (parse_srt(srt.read_text()), parse_srt(out.read_text())):
        assert cues_read[-1][1] <= 60.0 and len(cues_read) > 5
    assert probe(result.output).duration_s == pytest.approx(result.duration_s, abs=0.3)
