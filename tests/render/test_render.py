"""Real encodes of short clips by every method at every tier, checked by probing."""

import pytest

from engine.errors import RenderFailed
from engine.memory.tiers import tier
from engine.render.ffmpeg import parse_probe, probe
from engine.render.isolation import run_isolated
from engine.render.spec import RenderSpec
from engine.render.verify import verify
from engine.settings import Settings
from engine.speech.base import wav_duration_s
from engine.visuals.card import draw_card

SETTINGS = Settings.from_env({})


def make_job(tmp_path, method, tier_name, speech_wav, **changes) -> RenderSpec:
    used = tier(tier_name, SETTINGS)
    width, height = used.size()
    card = draw_card("Stay hungry. Stay foolish.", "Steve Jobs", (width, height), tmp_path / "card.png")
    fields = dict(
        method=method, card_path=str(card), audio_path=str(speech_wav), out_path=str(tmp_path / "out.mp4"),
        temp_dir=str(tmp_path), width=width, height=height, fps=used.fps, video_kbps=used.video_kbps,
        audio_kbps=used.audio_kbps, duration_s=round(wav_duration_s(speech_wav), 3), threads=2,
    )  # fmt: skip
    return RenderSpec(**{**fields, **changes})


@pytest.mark.parametrize("tier_name", ["high", "medium", "low"])
@pytest.mark.parametrize("method", ["moviepy", "ffmpeg"])
def test_method_at_tier_makes_a_verified_mp4(tmp_path, speech_wav, method, tier_name):
    spec = make_job(tmp_path, method, tier_name, speech_wav)
    run = run_isolated(spec, budget_mb=4000)
    assert run.status == "ok", run.error
    found = verify(tmp_path / "out.mp4", spec.width, spec.height, spec.duration_s)
    assert found.size_bytes > 10_000
    assert run.peak_rss_mb > 10 and run.wall_s > 0  # the encode was seen: x264 alone holds more at 480p
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.png", "out.mp4"]  # no temp file left


def test_emergency_is_480p_and_cut_to_its_duration(tmp_path, speech_wav):
    spec = make_job(tmp_path, "emergency", "emergency", speech_wav, duration_s=1.0)
    assert run_isolated(spec, budget_mb=4000).status == "ok"
    found = probe(tmp_path / "out.mp4")
    assert (found.width, found.height) == (854, 480)
    assert found.duration_s == pytest.approx(1.0, abs=0.25)


def test_watchdog_kills_the_whole_group_and_reports_it(tmp_path, speech_wav):
    spec = make_job(tmp_path, "moviepy", "high", speech_wav)
    run = run_isolated(spec, budget_mb=40)
    assert run.status == "killed"
    assert "over its 40 MB budget" in run.error
    assert run.peak_rss_mb >= 40  # killed once over it; the figure is rounded to 0.1 MB (40.04 reads 40.0)
    assert not (tmp_path / "spec-moviepy.json").exists()


def test_a_crashing_method_is_reported_as_crashed(tmp_path, speech_wav):
    run = run_isolated(make_job(tmp_path, "ffmpeg", "low", speech_wav, crash=True), budget_mb=4000)
    assert run.status == "crashed"
    assert "SIGABRT" in run.error


def test_a_failing_method_reports_ffmpegs_reason(tmp_path, speech_wav):
    spec = make_job(tmp_path, "ffmpeg", "low", speech_wav, audio_path=str(tmp_path / "missing.wav"))
    run = run_isolated(spec, budget_mb=4000)
    assert run.status == "failed"
    assert "ffmpeg failed" in run.error and "missing.wav" in run.error


def test_a_card_that_cannot_be_read_is_named_and_leaves_nothing(tmp_path, speech_wav):
    spec = make_job(tmp_path, "ffmpeg", "low", speech_wav, card_path=str(tmp_path / "missing.png"))
    run = run_isolated(spec, budget_mb=4000)
    assert (run.status, run.error) == ("failed", "could not read the card missing.png: No such file or directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.png"]


def test_verify_names_every_mismatch(tmp_path, speech_wav):
    spec = make_job(tmp_path, "ffmpeg", "low", speech_wav)
    run_isolated(spec, budget_mb=4000)
    with pytest.raises(RenderFailed, match=r"size is 854x480, not 1920x1080.*duration is"):
        verify(tmp_path / "out.mp4", 1920, 1080, spec.duration_s + 5)


def test_parse_probe_reads_streams():
    text = (
        "  Duration: 00:01:15.50, start: 0.000000, bitrate: 957 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 1080x1920, 24 fps\n"
        "  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 24000 Hz, mono, fltp, 64 kb/s\n"
    )
    found = parse_probe(text, 123)
    assert (found.duration_s, found.video_codec, found.width, found.height) == (75.5, "h264", 1080, 1920)
    assert (found.audio_codec, found.size_bytes) == ("aac", 123)
