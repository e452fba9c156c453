"""Requests and results as plain JSON-able data: the CLI's `--json`, and what crosses a job queue."""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from pathlib import Path

from engine.models import Attempt, Request, Result

_UPLOADS = ("background_image", "music_upload")  # bytes, carried as base64


def request_to_payload(request: Request) -> dict:
    data = asdict(request)
    data["out"] = str(request.out) if request.out else None
    for name in _UPLOADS:
        upload = getattr(request, name)
        data[name] = base64.b64encode(upload).decode() if upload else None
    data["crash_methods"] = list(request.crash_methods)
    return data


def request_from_payload(data: dict) -> Request:
    data = {k: v for k, v in data.items() if k in {f.name for f in fields(Request)}}
    data["out"] = Path(data["out"]) if data.get("out") else None
    for name in _UPLOADS:
        upload = data.get(name)
        data[name] = base64.b64decode(upload) if upload else None
    data["crash_methods"] = tuple(data.get("crash_methods", ()))
    return Request(**data)


def result_json(result: Result) -> dict:
    """The contract of `generate --json` (DESIGN.md): every field of the Result but its memory
    timeline, in plain JSON types; `error` and `error_kind` only when the generation failed."""
    data: dict = {}
    for spec in fields(Result):
        value = getattr(result, spec.name)
        if spec.name == "timeline" or (spec.name in ("error", "error_kind") and result.status != "error"):
            continue
        if spec.name == "attempts":
            value = [asdict(attempt) for attempt in value]
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        data[spec.name] = value
    return data


def result_from_json(data: dict) -> Result:
    known = {f.name for f in fields(Result)}
    values = {k: v for k, v in data.items() if k in known}
    values["output"] = Path(data["output"]) if data.get("output") else None
    values["cover"] = Path(data["cover"]) if data.get("cover") else None
    values["subtitles"] = tuple(Path(p) for p in data.get("subtitles", ()))
    values["notes"] = tuple(data.get("notes", ()))
    values["attempts"] = tuple(Attempt(**a) for a in data.get("attempts", ()))
    return Result(**values)
