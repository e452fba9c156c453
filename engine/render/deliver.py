"""The verified video and the files beside it, put in place together: the MP4 (with its subtitle
track when asked), its cover JPEG, its .srt and .vtt. Each is written aside and renamed into place;
when one cannot be written, the ones already placed are removed: all of them or none."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from PIL import Image

from engine.errors import RenderFailed
from engine.render import ffmpeg
from engine.render.spec import MP4_DELIVERY, subtitle_track

COVER_QUALITY = 88


def with_subtitles(video: Path, srt: Path, out: Path, lang: str) -> Path:
    """`video` with the cues of `srt` as a mov_text subtitle track (everything else copied)."""
    given, track = subtitle_track(str(srt), lang, 1)
    ffmpeg.run(["-i", str(video), *given, "-map", "0", "-c", "copy", *track, *MP4_DELIVERY, str(out)])
    return out


def cover(card: Image.Image, out: Path) -> Path:
    """The card as a JPEG: a thumbnail for the platforms and the page."""
    (card if card.mode == "RGB" else card.convert("RGB")).save(out, format="JPEG", quality=COVER_QUALITY, optimize=True)
    return out


def deliver(files: dict[Path, Path]) -> None:
    """Move each made file (key) to its target (value), all or none."""
    placed: list[Path] = []
    try:
        for made, target in files.items():
            _place(made, target)
            placed.append(target)
    except RenderFailed:
        for target in placed:
            target.unlink(missing_ok=True)
        raise


def _place(made: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        if made.stat().st_dev != target.parent.stat().st_dev:
            shutil.copyfile(made, partial)
        else:
            os.replace(made, partial)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RenderFailed(
            f"could not write {target.name} to {target.parent} ({exc.strerror}); check the folder and free disk"
        ) from None
