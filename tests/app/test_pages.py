"""The pages through Streamlit's AppTest: controls, a real generation, refusals, the history page."""

import pytest
from streamlit.testing.v1 import AppTest

from engine.history import HistoryStore
from engine.models import Attempt, Request
from engine.settings import Settings
from tests.helpers import ROOT, result


@pytest.fixture
def env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for name, value in {"DATA_DIR": str(data), "TTS_ENGINE": "espeak"}.items():
        monkeypatch.setenv(name, value)
    for name in ("MAX_MEMORY_MB", "MIN_REQUIRED_MEMORY_MB", "ADMIN_TOKEN", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return Settings.from_env()


def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    return at.run()


def finish_job(at: AppTest) -> AppTest:
    job = at.session_state["generation"]
    assert job.wait(120), "the generation did not finish"
    return at.run()


def test_generate_page_has_every_control(env):
    at = app()
    assert not at.exception
    assert at.text_area(key="text").max_chars == env.max_text_chars
    assert at.text_input(key="author").max_chars == 120
    assert at.selectbox(key="tts").options == [
        "Auto (gTTS, then offline voices)", "gTTS (online)", "Neural, offline (Piper)", "Robotic, offline (eSpeak NG)",
    ]  # fmt: skip
    assert at.segmented_control(key="speed").options == ["Slower", "Normal", "Faster"]
    assert at.radio(key="tier").options == ["Auto", "High", "Medium", "Low"]
    assert at.radio(key="method").options == ["Auto", "MoviePy", "FFmpeg", "Emergency"]
    assert at.checkbox(key="no_fallback").disabled  # meaningless with the automatic chain
    assert at.button_group(key="aspect").value == "16:9"
    captions = " ".join(c.value for c in at.caption)
    assert "Memory now gives" in captions and "Output: **1920×1080**" in captions


def test_every_control_changes_the_request(env):
    at = app()
    at.text_area(key="text").input("Stay hungry.")
    at.text_input(key="author").input("Steve Jobs")
    at.selectbox(key="tts").select("espeak").run()
    at.selectbox(key="lang").select("en-gb")
    at.radio(key="tier").set_value("low")
    at.radio(key="method").set_value("moviepy").run()
    at.checkbox(key="no_fallback").check()
    at.button_group(key="aspect").set_value("9:16")
    at.selectbox(key="background").select("ocean")
    at.toggle(key="captions").set_value(True)
    at.toggle(key="motion").set_value(True).run()
    assert "Output: **480×854**" in " ".join(c.value for c in at.caption)
    at.button(key="generate").click().run()
    request = at.session_state["generation"].request
    assert (request.text, request.author, request.tts, request.lang) == (
        "Stay hungry.",
        "Steve Jobs",
        "espeak",
        "en-gb",
    )
    assert (request.tier, request.method, request.fallback, request.aspect) == ("low", "moviepy", False, "9:16")
    assert (request.background, request.captions, request.motion) == ("ocean", True, True)
    finish_job(at)


def test_a_video_to_post_from_the_page_with_its_files_to_download(env):
    """The platform preset, word captions, subtitles and a bed reach the request; the cover and
    the subtitle files are offered for download beside the MP4."""
    at = app()
    assert at.selectbox(key="preset").options == [
        "None", "Reels, TikTok, Shorts (9:16, 30 fps)", "YouTube (16:9)", "Square (1:1)",
    ]  # fmt: skip
    assert at.selectbox(key="music").options == ["None", "Soft pad", "Piano", "Pulse", "My own file"]
    assert at.button_group(key="caption_style").disabled  # until captions are on
    at.text_area(key="text").input("Stay hungry. Stay foolish.")
    at.radio(key="tier").set_value("low")
    at.selectbox(key="preset").select("reels").run()
    assert at.button_group(key="aspect").disabled and "Output: **480×854**" in " ".join(c.value for c in at.caption)
    at.toggle(key="captions").set_value(True).run()
    at.button_group(key="caption_style").set_value("word")
    at.toggle(key="subtitles").set_value(True)
    at.selectbox(key="music").select("piano").run()
    at.button(key="generate").click().run()
    request = at.session_state["generation"].request
    assert (request.preset, request.caption_style, request.subtitles, request.music) == ("reels", "word", True, "piano")
    at = finish_job(at)
    assert not at.exception and at.success[0].value.startswith("Done in")
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels == ["Cover (JPEG)", "Subtitles (SRT)", "Subtitles (VTT)"]


def test_a_generation_completes_and_shows_its_report(env):
    at = app()
    at.text_area(key="text").input("Stay hungry. Stay foolish.")
    at.radio(key="tier").set_value("low")
    at.button(key="generate").click().run()
    at = finish_job(at)
    assert not at.exception
    assert at.success[0].value.startswith("Done in")
    [video] = at.get("video")
    assert "/videos/quote-" in video.proto.url
    assert {m.label: m.value for m in at.metric}["Tier"] == "low"
    report = at.expander[0]
    assert report.label == "Report"
    [rows, attempts] = report.markdown
    assert "| tier and why | low\\: " in rows.value and "| 1 | ffmpeg | low | ok |" in attempts.value
    assert at.text_area(key="text").value == "Stay hungry. Stay foolish."  # the form keeps the text


@pytest.mark.parametrize(
    "text, extra_env, kind, message",
    [
        ("   ", {}, "error", "the quote is empty"),
        ("Hello 🦜", {}, "error", "cannot draw"),
        ("Hello", {"MIN_REQUIRED_MEMORY_MB": "10000000"}, "warning", "This machine is too small: "),
    ],
)
def test_refused_input_shows_its_message(env, monkeypatch, text, extra_env, kind, message):
    for name, value in extra_env.items():
        monkeypatch.setenv(name, value)
    at = app()
    at.text_area(key="text").input(text)
    at.button(key="generate").click().run()
    at = finish_job(at)
    assert not at.exception
    shown = [e.value for e in getattr(at, kind)]
    assert any(message in value for value in shown), shown
    assert at.text_area(key="text").value == text


def seed(settings: Settings) -> HistoryStore:
    store = HistoryStore.open(settings)
    for n, (method, tier, status, tries) in enumerate(
        [
            ("ffmpeg", "high", "ok", 1),
            ("moviepy", "medium", "ok", 1),
            ("ffmpeg", "low", "ok", 2),
            (None, None, "error", 3),
        ]
    ):
        gid = f"{n:032x}"
        store.begin(gid, Request("x"))
        attempts = tuple(Attempt("moviepy", tier or "low", "killed", "over budget", 300, 1, 250) for _ in range(tries))
        store.finish(
            result(gid, method=method, tier=tier, status=status, attempts=attempts),
            None if status == "ok" else "render_failed",
        )
    return store


def test_history_page_renders_from_a_seeded_database(env):
    store = seed(env)
    at = app()
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert at.title[0].value == "History"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Generations"] == "4" and metrics["Success rate"] == "75%" and metrics["Fallback rate"] == "33%"
    assert len(at.get("plotly_chart")) == 10  # nine history charts and the chosen generation's timeline
    [table] = at.dataframe
    assert len(table.value) == 4 and set(table.value["id"]) == {g.id for g in store.generations()}
    assert at.selectbox(key="h_generation").options
    store.close()


def test_history_filters_narrow_the_table(env):
    seed(env).close()
    at = app()
    at.switch_page("pages/history.py").run()
    at.multiselect(key="h_methods").select("moviepy").run()
    assert len(at.dataframe[0].value) == 1
    assert {m.label: m.value for m in at.metric}["Generations"] == "1"


def test_with_no_admin_token_the_history_page_removes_nothing(env):
    """The public demo sets no token: cleanup is an admin action, so the page offers none."""
    store = seed(env)
    env.outputs_dir.mkdir(parents=True, exist_ok=True)
    kept = env.outputs_dir / f"quote-{'9' * 32}.mp4"
    kept.write_bytes(b"video")
    at = app()
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert not [b for b in at.button if "Clean up" in b.label]
    assert "h_days" not in {n.key for n in at.number_input}
    assert any("ADMIN_TOKEN" in c.value for c in at.caption)
    assert kept.exists()
    store.close()


def test_cleanup_needs_the_admin_token_when_one_is_set(env, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN", "s3cret")
    seed(env).close()
    at = app()
    at.switch_page("pages/history.py").run()
    at.text_input(key="h_token").input("wrong")
    at.button[0].click().run()
    assert any("admin token is wrong" in e.value for e in at.error)


def test_the_tuning_comparison_shows_every_tier_and_method(env):
    at = app()
    at.text_area(key="text").input("Stay hungry.").run()
    at.button(key="sweep_run").click().run()
    task = at.session_state["sweep"]
    assert task.wait(180)
    at.run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table["method"]) == ["moviepy", "ffmpeg"] * 3 + ["emergency"]
    assert len(at.get("image")) == 7


def test_the_generate_page_is_served_without_pandas_or_sqlalchemy(env):
    """The first page a visitor sees does not load the history page's pandas and Plotly Express (36 MB
    and 0.2 s of the server's start, measured) nor SQLAlchemy (22 MB, 0.13 s; the new history is
    migrated by a process of its own); run apart, since this process has loaded them already."""
    import json
    import os
    import subprocess
    import sys

    assert not env.data_dir.exists()  # a first start: the history is made and migrated

    code = (
        "import json, sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'streamlit_app.py')!r}, default_timeout=60).run()\n"
        "print(json.dumps({'exception': len(at.exception), 'button': [b.label for b in at.button],\n"
        "                  'loaded': [m for m in ('pandas', 'plotly.express', 'sqlalchemy') if m in sys.modules]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    page = json.loads(done.stdout.splitlines()[-1])
    assert page["exception"] == 0 and "Generate video" in page["button"]  # the page was really drawn
    assert page["loaded"] == []
