"""Whole generations: the chain, its fallbacks, refusals, and what is left behind."""

import errno
from dataclasses import replace

import pytest

from engine.errors import InvalidInput, NotEnoughMemory, RenderFailed
from engine.memory.ledger import attempt_budget_mb
from engine.memory.reading import read_memory
from engine.models import AttemptEvent, MemorySample, Request, StageEvent
from engine.pipeline import generate
from engine.render.ffmpeg import probe
from tests.helpers import QUOTES


def test_a_quote_becomes_a_verified_mp4(settings):
    events = []
    result = generate(Request("Stay hungry. Stay foolish.", author="Steve Jobs", tier="low"), settings, events.append)
    assert result.status == "ok" and result.tts_engine == "espeak"
    assert result.output.parent == settings.outputs_dir.resolve()
    assert result.output.name == f"quote-{result.generation_id}.mp4"
    found = probe(result.output)
    assert (found.width, found.height) == (854, 480) == (result.width, result.height)
    assert found.video_codec == "h264" and found.audio_codec == "aac"
    assert result.size_bytes == result.output.stat().st_size
    assert (result.video_kbps, result.audio_kbps) == (300, 48)
    assert result.method == "ffmpeg" and [a.status for a in result.attempts] == ["ok"]
    assert result.peak_rss_mb > 0 and result.available_mb > 0
    assert result.ssim > 0.95 and result.psnr_db > 30  # the picture survives encoding
    assert set(result.stage_s) >= {"validate", "speech", "card", "render", "verify"}
    assert result.timeline and result.timeline[-1][0] <= result.wall_s
    stages = [e.stage for e in events if isinstance(e, StageEvent)]
    assert stages[0] == "admit" and stages[-1] == "done" and "render" in stages
    assert any(isinstance(e, MemorySample) for e in events)
    assert sum(isinstance(e, AttemptEvent) for e in events) == 1
    assert sorted(settings.outputs_dir.iterdir()) == [result.cover, result.output]  # the MP4 and its cover
    assert result.cover == result.output.with_suffix(".jpg") and result.subtitles == ()


@pytest.mark.parametrize("captions", [False, True], ids=["still card", "phrase captions"])
def test_the_pictures_measured_as_they_are_muxed_give_the_videos_figures(settings, monkeypatch, captions):
    """The FFmpeg method measures its encoded pictures beside the mux; where no hard link can be made
    to keep them, the delivered video is measured after the render. The same figures either way."""
    request = Request(QUOTES["medium"], tier="low", captions=captions, method="ffmpeg", fallback=False)
    beside = generate(request, settings)

    def no_link(*_args: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr("engine.pipeline.os.link", no_link)
    after = generate(request, settings)
    assert beside.captions == after.captions == captions
    assert (beside.ssim, beside.psnr_db) == (after.ssim, after.psnr_db) and beside.psnr_db > 30


def test_a_mux_that_fails_after_the_pictures_measure_began_waits_for_it(settings, monkeypatch):
    """The measure begins beside the mux; when the mux then fails, the generation ends only once the
    measure has (no ffmpeg of ours outlives it, nothing is left in its folder)."""
    import threading
    import time

    import engine.pipeline
    import engine.render.sound
    from engine.render.quality import measure

    spans: list[tuple[float, float]] = []
    began = threading.Event()

    def slow_measure(*args, **named):
        begun = time.monotonic()
        began.set()
        time.sleep(0.5)  # long enough to be running still when the mux fails
        try:
            return measure(*args, **named)
        finally:
            spans.append((begun, time.monotonic()))

    def no_room(_path) -> None:  # the step before the mux: the sound made stereo for it
        assert began.wait(10)  # the measure has begun (a measure not begun is cancelled, not waited for)
        raise RenderFailed("could not rewrite the sound: no space left on device")

    monkeypatch.setattr(engine.pipeline, "measure", slow_measure)
    monkeypatch.setattr(engine.render.sound, "make_stereo", no_room)
    request = Request(QUOTES["medium"], tier="low", method="ffmpeg", fallback=False)
    with pytest.raises(RenderFailed, match="no space left on device") as caught:
        generate(request, settings)
    ended = time.monotonic()
    result = caught.value.result
    assert [(a.method, a.status) for a in result.attempts] == [("ffmpeg", "failed")]
    assert len(spans) == 1 and spans[0][1] <= ended  # it began, and it ended before the generation did
    assert not list(settings.temp_dir.iterdir())  # the attempt's folder, its kept pictures and all
    assert not settings.outputs_dir.exists() or not list(settings.outputs_dir.iterdir())


def test_watchdog_kills_moviepy_and_the_next_method_succeeds(settings):
    app = read_memory().app_rss_mb
    tight = replace(settings, max_memory_mb=int(app + 90), min_required_memory_mb=50)  # MoviePy holds ~105 MB
    request = Request("Stay hungry. Stay foolish.", tier="high", method="moviepy")
    result = generate(request, tight)
    first, last = result.attempts[0], result.attempts[-1]
    assert first.method == "moviepy" and first.status == "killed"
    assert "watchdog" in first.error and first.peak_rss_mb >= first.budget_mb  # both rounded to 0.1 MB
    assert last.status == "ok" and result.method == last.method != "moviepy"
    assert result.fell_back


def test_a_crashing_method_falls_back(settings):
    result = generate(Request("Stay hungry.", tier="low", method="moviepy", crash_methods=("moviepy",)), settings)
    assert [(a.method, a.status) for a in result.attempts] == [("moviepy", "crashed"), ("ffmpeg", "ok")]
    assert result.method == "ffmpeg"


def test_no_fallback_runs_the_method_alone_and_fails_cleanly(settings):
    request = Request("Stay hungry.", tier="low", method="ffmpeg", fallback=False, crash_methods=("ffmpeg",))
    with pytest.raises(RenderFailed, match="every render method failed") as caught:
        generate(request, settings)
    result = caught.value.result
    assert result.status == "error" and len(result.attempts) == 1 and result.attempts[0].status == "crashed"
    assert not settings.outputs_dir.exists() or not list(settings.outputs_dir.iterdir())


def test_every_method_failing_says_why(settings):
    request = Request("Stay hungry.", tier="low", crash_methods=("ffmpeg", "emergency"))
    with pytest.raises(RenderFailed) as caught:
        generate(request, settings)
    assert [a.method for a in caught.value.result.attempts] == ["ffmpeg", "emergency"]
    assert "ffmpeg: the process died" in str(caught.value)


def test_emergency_is_at_most_60_seconds(settings):
    text = "Twenty years from now you will be more disappointed by the things you did not do. " * 14
    result = generate(Request(text, method="emergency", fallback=False), settings)
    assert result.tier == "emergency" and "emergency fallback" in result.tier_reason
    assert result.duration_s == pytest.approx(60, abs=0.25)
    assert (result.width, result.height) == (854, 480)


def test_speech_over_max_video_duration_is_refused_before_rendering(settings):
    with pytest.raises(InvalidInput, match=r"longer than the 1 s limit \(MAX_VIDEO_DURATION\)") as caught:
        generate(Request("Stay hungry. Stay foolish. Go."), replace(settings, max_video_duration_s=1))
    assert caught.value.result.attempts == ()


def test_a_machine_too_small_for_any_render_is_refused_with_figures(settings):
    with pytest.raises(NotEnoughMemory, match=r"too small: \d+ MB available for a render, MIN_REQUIRED_MEMORY_MB "
                                              r"asks for 1000000 MB") as caught:  # fmt: skip
        generate(Request("Stay hungry."), replace(settings, min_required_memory_mb=1_000_000))
    assert caught.value.needed_mb == 1_000_000 and caught.value.exit_code == 3
    assert caught.value.result.attempts == () and not settings.outputs_dir.exists()


def test_with_nothing_set_the_floor_comes_from_the_cost_model(settings):
    tiny = replace(settings, max_memory_mb=64)  # less than the app itself holds: nothing is left for a render
    with pytest.raises(NotEnoughMemory, match=r"too small: 0 MB available for a render, the smallest render needs"):
        generate(Request("Stay hungry."), tiny)


@pytest.mark.parametrize(
    "request_, message",
    [
        (Request(""), "empty"),
        (Request("   \n\t "), "empty"),
        (Request("?!"), "no letters"),
        (Request("x" * 2001), "2001 characters long, over the 2000"),
        (Request("Hello\x00world"), r"U\+0000"),
        (Request("Hello\x1b[31m"), r"U\+001B"),
        (Request("Hello", author="a\nb"), "one line"),
        (Request("Hello", tier="ultra"), "tier 'ultra'"),
        (Request("Hello", method="magic"), "method 'magic'"),
        (Request("Hello", aspect="4:3"), "aspect '4:3'"),
        (Request("Hello", preset="vine"), "preset 'vine'"),
        (Request("Hello", caption_style="letter"), "caption style 'letter'"),
        (Request("Hello", music="jazz"), "music 'jazz'"),
        (Request("Hello", music_upload=b"<html>not music</html>"), "not an MP3, WAV, OGG or M4A"),
        (Request("Hello", lang="english!"), "not a language code"),
        (Request("Hello", tld="evil.example/x"), "accent"),
        (Request("Hello 🦜"), "cannot draw"),
    ],
)
def test_bad_input_gets_a_sentence_and_leaves_nothing(settings, request_, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        generate(request_, settings)
    assert caught.value.result.status == "error"
    assert not settings.outputs_dir.exists()


def test_out_path_is_written_atomically(settings, tmp_path):
    target = tmp_path / "videos" / "mine.mp4"
    result = generate(Request("Stay hungry.", tier="low", out=target), settings)
    assert result.output == target and probe(target).duration_s > 0.5
    assert sorted(p.name for p in target.parent.iterdir()) == ["mine.jpg", "mine.mp4"]  # no partial file left


def test_budget_keeps_a_margin():
    assert attempt_budget_mb(1000) == 900
    assert attempt_budget_mb(100) == 84
    assert attempt_budget_mb(10) == 0


def test_a_full_disk_while_the_card_is_written_beside_says_so_and_leaves_nothing(settings, monkeypatch):
    import errno

    import engine.pipeline

    def no_room(card, out):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.pipeline, "cover", no_room)  # runs on the pool thread, beside the speech
    with pytest.raises(RenderFailed, match=r"the disk is full or the file size limit was reached") as caught:
        generate(Request("Stay hungry. Stay foolish.", tier="low"), settings)
    assert caught.value.result.attempts == ()  # found before any render started
    assert list(settings.temp_dir.iterdir()) == [] and not settings.outputs_dir.exists()


def test_a_generation_that_fails_while_its_card_is_drawn_waits_for_it_before_tidying(settings, monkeypatch):
    """The card is drawn on a thread while the speech is made: a generation refused meanwhile must not
    remove its folder under the drawing, which would then write its files into a folder re-made or gone."""
    import time

    import engine.pipeline

    drawn = []
    slow = engine.pipeline._Pictures._draw

    def slowly(self, size):
        time.sleep(0.5)  # the speech is refused well before this
        drawn.append(slow(self, size))
        return drawn[-1]

    monkeypatch.setattr(engine.pipeline._Pictures, "_draw", slowly)
    with pytest.raises(InvalidInput, match="MAX_VIDEO_DURATION"):
        generate(Request("Stay hungry. Stay foolish. Go."), replace(settings, max_video_duration_s=1))
    assert len(drawn) == 1  # the drawing had finished when generate returned
    time.sleep(0.2)
    assert list(settings.temp_dir.iterdir()) == []
