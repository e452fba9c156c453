"""Security: no shell, no user text in ffmpeg arguments beyond file paths we chose, names that
cannot be guessed, served files only from DATA_DIR/outputs."""

import ast
import re
import subprocess
import uuid
from pathlib import Path

from engine.app.routes import video_path
from engine.models import Request
from engine.pipeline import generate
from tests.helpers import ROOT

SOURCES = [
    *ROOT.glob("engine/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "streamlit_app.py",
    *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py"),
]  # fmt: skip
SHELLS = {"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/env"}
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell")}  # fmt: skip


def shell_uses(source: str) -> list[str]:
    """Every way `source` could hand a command line to a shell: `shell=` (anything but a plain
    False), the calls that take a command line, and an argument list that starts a shell with -c."""
    found = []
    for node in ast.walk(ast.parse(source)):
        explicit_no = isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant) and not node.value.value
        if isinstance(node, ast.keyword) and node.arg == "shell" and not explicit_no:
            found.append("shell=")
        if isinstance(node, ast.Attribute) and (getattr(node.value, "id", ""), node.attr) in SHELL_CALLS:
            found.append(f"{getattr(node.value, 'id', '')}.{node.attr}")
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            flags = [w for w in words[1:] if w.startswith("-") and not w.startswith("--") and "c" in w]
            if words and words[0] in SHELLS and flags:
                found.append(f"{words[0]} {flags[0]}")
    return found


def test_the_shell_finder_finds_every_form():
    assert shell_uses("subprocess.run(cmd, shell=True)") == ["shell="]
    assert shell_uses("subprocess.run(cmd, shell=flag)") == ["shell="]
    assert shell_uses("os.system('ls')") == ["os.system"]
    assert shell_uses("subprocess.run(['sh', '-c', 'ls'])") == ["sh -c"]
    assert shell_uses("subprocess.run(('/bin/bash', '-c', cmd))") == ["/bin/bash -c"]
    assert shell_uses("subprocess.run(['bash', '-lc', cmd])") == ["bash -lc"]
    assert shell_uses("subprocess.getoutput('ls')") == ["subprocess.getoutput"]
    assert shell_uses("await asyncio.create_subprocess_shell(cmd)") == ["asyncio.create_subprocess_shell"]
    assert shell_uses("subprocess.run(['ffmpeg', '-c', 'copy'], shell=False)") == []


def test_no_shell_anywhere():
    assert len(SOURCES) > 40
    for path in SOURCES:
        assert shell_uses(path.read_text()) == [], path


HOSTILE = "'; rm -rf / ; [0]drawtext=text=pwned:textfile=/etc/passwd, $(reboot) `id` | tee"


def test_no_quote_text_reaches_any_process_a_generation_starts(settings, monkeypatch):
    """Every process a generation starts (the renders, probes, quality) is seen with its argument
    list, and the MoviePy child with the spec file it reads (its own ffmpeg gets only what that
    spec holds), for the FFmpeg and MoviePy methods: the quote and the author are drawn by Pillow
    and spoken in-process, so none of their text is ever an argument."""
    started: list[list[str]] = []
    real_init = subprocess.Popen.__init__

    def watched(self, args, *rest, **options):
        argv = [str(a) for a in args]
        # What a Python child is handed besides its arguments: the render spec file it reads.
        files = [Path(a).read_text() for a in argv if a.endswith(".json") and Path(a).is_file()]
        started.append(argv + files)
        real_init(self, args, *rest, **options)

    monkeypatch.setattr(subprocess.Popen, "__init__", watched)
    for method in ("ffmpeg", "moviepy"):
        request = Request(f"Stay {HOSTILE} hungry.", author=HOSTILE, tier="low", method=method, captions=True)
        assert generate(request, settings).status == "ok"
    assert any("ffmpeg" in argv[0] for argv in started) and any("engine.render.child" in argv for argv in started)
    for argv in started:
        joined = " ".join(argv)
        for piece in ("rm -rf", "drawtext", "pwned", "/etc/passwd", "reboot", "`id`"):
            assert piece not in joined, argv
    # No picture filter at all (cards arrive as raw frames); the sound's is the mono-to-stereo pan
    # (MoviePy's encode; the FFmpeg methods code one channel), and where the sound is encoded in halves
    # (render/sound), the resampling and the split, in samples.
    assert not [argv for argv in started if "-vf" in argv]
    half = r"aresample=48000,atrim=(end|start)_sample=\d+(,asetpts=PTS-STARTPTS)?"
    sound = re.compile(rf"pan=stereo\|c0=c0\|c1=c0(,{half})?|{half}")
    filters = [argv[i + 1] for argv in started for i, arg in enumerate(argv) if arg == "-af"]
    assert filters and all(sound.fullmatch(f) for f in filters), filters


def test_output_names_are_unguessable(settings):
    first = generate(Request("Stay hungry.", tier="low"), settings)
    second = generate(Request("Stay hungry.", tier="low"), settings)
    for result in (first, second):
        name = result.output.stem.removeprefix("quote-")
        assert uuid.UUID(name).version == 4  # a random UUID: 122 random bits
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
