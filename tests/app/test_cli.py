"""`python -m engine` end to end, in a real subprocess: JSON fields and exit codes 0/1/2/3."""

import json
import os
from pathlib import Path

import pytest

from engine.render.ffmpeg import probe
from tests.helpers import ROOT, run_cli

FIELDS = {
    "status", "generation_id", "output", "tier", "method", "tts_engine", "width", "height", "duration_s",
    "size_bytes", "video_kbps", "audio_kbps", "peak_rss_mb", "available_mb", "wall_s", "attempts",
}  # fmt: skip
ATTEMPT_FIELDS = {"method", "tier", "status", "error", "peak_rss_mb", "wall_s"}


@pytest.fixture
def env(tmp_path):
    return {"DATA_DIR": str(tmp_path / "data"), "TTS_ENGINE": "espeak"}


def test_generate_json_exit_0(env):
    done = run_cli("generate", "Stay hungry. Stay foolish.", "--tier", "medium", "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= FIELDS and "error" not in data
    assert data["status"] == "ok" and data["tts_engine"] == "espeak"
    assert (data["width"], data["height"], data["tier"]) == (1280, 720, "medium")
    assert set(data["attempts"][0]) >= ATTEMPT_FIELDS
    found = probe(Path(data["output"]))
    assert found.duration_s == pytest.approx(data["duration_s"], abs=0.01)


def test_offline_by_default_when_there_is_no_network(env):
    env = {**env, "TTS_ENGINE": "auto"}
    # The child has no socket guard; a proxy that refuses at once stands in for "no network".
    env |= {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    done = run_cli("generate", "Stay hungry.", "--tier", "low", "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["tts_engine"] == "piper" and data["tts_fallback_reason"].startswith("gtts: ")  # the neural voice


def test_human_output(env):
    done = run_cli("generate", "Stay hungry.", "--tier", "low", env=env)
    assert done.returncode == 0
    assert "854x480" in done.stdout and "method ffmpeg" in done.stdout and "speech espeak" in done.stdout


def test_failed_after_every_fallback_exit_1(env):
    # A cap so small that every attempt is over budget at once.
    env = {**env, "MAX_MEMORY_MB": "64", "MIN_REQUIRED_MEMORY_MB": "0"}
    done = run_cli("generate", "Stay hungry.", "--method", "emergency", "--no-fallback", "--json", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "error" and "every render method failed" in data["error"]
    assert data["attempts"][0]["status"] == "killed"
    assert data["output"] is None


@pytest.mark.parametrize(
    "args, extra_env, message",
    [
        (["generate", ""], {}, "empty"),
        (["generate", "x" * 30], {"MAX_TEXT_CHARS": "20"}, "over the 20-character limit"),
        (["generate", "Hello"], {"MAX_MEMORY_MB": "plenty"}, "MAX_MEMORY_MB"),
        (["generate", "Hello"], {"TTS_ENGINE": "siri"}, "TTS_ENGINE"),
    ],
)
def test_invalid_input_exit_2(env, args, extra_env, message):
    done = run_cli(*args, env={**env, **extra_env})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_input_json(env):
    done = run_cli("generate", "Hello\x07", "--json", env=env)
    assert done.returncode == 2
    assert "U+0007" in json.loads(done.stdout)["error"]


def test_unknown_choice_is_refused_by_the_parser(env):
    done = run_cli("generate", "Hello", "--tier", "ultra", env=env)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_too_small_exit_3(env):
    done = run_cli("generate", "Hello", "--json", env={**env, "MIN_REQUIRED_MEMORY_MB": "10000000"})
    assert done.returncode == 3
    data = json.loads(done.stdout)
    assert data["status"] == "error" and data["error"].startswith("this machine is too small: ")
    assert data["attempts"] == []


def test_monitor_prints_readings(env):
    done = run_cli("monitor", "--count", "2", "--interval", "0.1", env=env)
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and all("available" in line and "app tree" in line for line in lines)


def test_captions_motion_and_formats_from_the_cli(env):
    done = run_cli("generate", "Stay hungry. Stay foolish.", "--captions", "--aspect", "9:16", "--tier", "low",
                   "--background", "ember", "--json", env=env)  # fmt: skip
    data = json.loads(done.stdout)
    assert done.returncode == 0 and (data["width"], data["height"], data["captions"]) == (480, 854, True)
    assert data["notes"] == []


def test_a_bad_background_image_path_exit_2(env, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a picture")
    done = run_cli("generate", "Hello", "--background-image", str(fake), env=env)
    assert done.returncode == 2 and "not a readable JPEG, PNG or WebP" in done.stderr
    done = run_cli("generate", "Hello", "--background-image", str(tmp_path / "missing.png"), env=env)
    assert done.returncode == 2 and "cannot read the background image" in done.stderr


def test_a_video_to_post_in_one_command(env, tmp_path):
    """The platform preset, word captions, subtitles and a bed under the voice, from one command."""
    from engine.audio.loudness import measure
    from tests.render.test_delivery import assert_shareable

    done = run_cli(
        "generate", "Stay hungry. Stay foolish.", "--preset", "reels", "--captions", "--caption-style", "word",
        "--subtitles", "--music", "pad", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    output = Path(data["output"])
    assert (data["width"], data["height"], data["fps"], data["preset"]) == (1080, 1920, 30, "reels")
    assert (data["caption_style"], data["music"], data["captions"]) == ("word", "pad", True)
    assert data["cover"] == str(output.with_suffix(".jpg")) and Path(data["cover"]).is_file()
    assert data["subtitles"] == [str(output.with_suffix(".srt")), str(output.with_suffix(".vtt"))]
    assert all(Path(p).stat().st_size > 0 for p in data["subtitles"])
    assert_shareable(output, 30)
    assert measure(output).meets_target()


def test_a_music_file_that_is_not_music_is_a_sentence(env, tmp_path):
    page = tmp_path / "song.mp3"
    page.write_text("<html>not a song</html>")
    done = run_cli("generate", "Stay hungry.", "--music", str(page), env=env)
    assert done.returncode == 2 and "not an MP3, WAV, OGG or M4A" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("generate", "Stay hungry.", "--music", "jazz", env=env)
    assert done.returncode == 2 and "neither a bed" in done.stderr


def test_a_generation_in_latin_with_espeak_imports_neither_fonttools_nor_package_metadata(env):
    """fontTools is imported only for a quote outside Latin (84 ms with the font's read), package
    versions read only when Piper speaks (45 ms): a quote in English with eSpeak NG needs neither."""
    import subprocess
    import sys

    code = (
        "import contextlib, io, sys; from engine.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['generate', 'Déjà vu — “naïve” café… 50%', '--tier', 'low', '--json'])\n"
        "print(code, sorted(m for m in ('fontTools', 'importlib.metadata') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=240
    )
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr[-500:]
