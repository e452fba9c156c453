"""Security: no shell, no user text in ffmpeg arguments beyond file paths we chose, names that
cannot be guessed, served files only from DATA_DIR/outputs."""

import ast
from pathlib import Path

from engine.app.routes import video_path
from engine.models import Request
from engine.pipeline import generate
from engine.render import still_loop
from engine.render.spec import RenderSpec

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*ROOT.glob("engine/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "streamlit_app.py"]


def test_no_shell_anywhere():
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                assert not (isinstance(node.value, ast.Constant) and node.value.value), f"shell=True in {path}"
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("system", "popen")
                and getattr(node.value, "id", "") == "os"
            ):
                raise AssertionError(f"os.{node.attr} in {path}")


def test_ffmpeg_arguments_carry_no_quote_text(tmp_path):
    hostile = "'; rm -rf / ; [0]drawtext=text=pwned:"
    job = RenderSpec(
        method="ffmpeg", card_path=str(tmp_path / "card.png"), audio_path=str(tmp_path / "a.wav"),
        out_path=str(tmp_path / "o.mp4"), temp_dir=str(tmp_path), width=854, height=480, fps=24,
        video_kbps=300, audio_kbps=48, duration_s=3.0,
        captions=((str(tmp_path / "s0.png"), 0.0, 1.5), (str(tmp_path / "s1.png"), 1.5, 3.0)),
    )  # fmt: skip
    commands, _ = still_loop.commands(job)
    joined = " ".join(" ".join(c) for c in commands)
    assert hostile not in joined
    filters = [c[c.index("-vf") + 1] for c in commands if "-vf" in c]
    assert filters and all(f == "scale=854:480:flags=bicubic,format=yuv420p" for f in filters)


def test_output_names_are_unguessable(settings):
    first = generate(Request("Stay hungry.", tier="low"), settings)
    second = generate(Request("Stay hungry.", tier="low"), settings)
    for result in (first, second):
        assert len(result.output.stem.removeprefix("quote-")) == 32  # 128 random bits
    assert first.output != second.output


def test_the_video_route_serves_only_our_outputs(settings, tmp_path):
    result = generate(Request("Stay hungry.", tier="low"), settings)
    assert video_path(settings, result.output.name) == result.output
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    link = settings.outputs_dir / f"quote-{'a' * 32}.mp4"
    link.symlink_to(outside)
    for name in ("../history.db", "..%2fhistory.db", "quote-../../etc/passwd.mp4", link.name, "history.db"):
        assert video_path(settings, name) is None
