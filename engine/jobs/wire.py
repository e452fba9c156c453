"""Requests and results as plain JSON-able data: the CLI's `--json`, and what crosses a job queue."""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from pathlib import Path

from engine.models import Attempt, Request, Result

ATTEMPT_FIELDS = ("method", "tier", "status", "error", "peak_rss_mb", "wall_s")
ATTEMPT_EXTRAS = ("budget_mb", "captions", "motion", "predicted_peak_mb")


def request_to_dict(request: Request) -> dict:
    data = asdict(request)
    data["out"] = str(request.out) if request.out else None
    data["background_image"] = base64.b64encode(request.background_image).decode() if request.background_image else None
    data["crash_methods"] = list(request.crash_methods)
    return data


def request_from_dict(data: dict) -> Request:
    data = {k: v for k, v in data.items() if k in {f.name for f in fields(Request)}}
    data["out"] = Path(data["out"]) if data.get("out") else None
    image = data.get("background_image")
    data["background_image"] = base64.b64decode(image) if image else None
    data["crash_methods"] = tuple(data.get("crash_methods", ()))
    return Request(**data)


def result_json(result: Result) -> dict:
    """The contract of `generate --json` (DESIGN.md), plus a few fields the report shows."""
    data = {
        "status": result.status,
        "generation_id": result.generation_id,
        "output": str(result.output) if result.output else None,
        "tier": result.tier,
        "tier_asked": result.tier_asked,
        "tier_reason": result.tier_reason,
        "tier_policy": result.tier_policy,
        "seed_tier": result.seed_tier,
        "method": result.method,
        "tts_engine": result.tts_engine,
        "tts_fallback_reason": result.tts_fallback_reason,
        "aspect": result.aspect,
        "width": result.width,
        "height": result.height,
        "duration_s": result.duration_s,
        "size_bytes": result.size_bytes,
        "video_kbps": result.video_kbps,
        "audio_kbps": result.audio_kbps,
        "peak_rss_mb": result.peak_rss_mb,
        "available_mb": result.available_mb,
        "budget_mb": result.budget_mb,
        "app_rss_mb": result.app_rss_mb,
        "wall_s": result.wall_s,
        "stage_s": result.stage_s,
        "ssim": result.ssim,
        "psnr_db": result.psnr_db,
        "predicted_peak_mb": result.predicted_peak_mb,
        "predicted_wall_s": result.predicted_wall_s,
        "prediction_source": result.prediction_source,
        "captions": result.captions,
        "motion": result.motion,
        "notes": list(result.notes),
        "attempts": [
            {k: v for k, v in asdict(a).items() if k in (*ATTEMPT_FIELDS, *ATTEMPT_EXTRAS)} for a in result.attempts
        ],
    }
    if result.status == "error":
        data["error"] = result.error
        data["error_kind"] = result.error_kind
    return data


def result_from_json(data: dict) -> Result:
    known = {f.name for f in fields(Result)}
    values = {k: v for k, v in data.items() if k in known}
    values["output"] = Path(data["output"]) if data.get("output") else None
    values["notes"] = tuple(data.get("notes", ()))
    values["attempts"] = tuple(Attempt(**a) for a in data.get("attempts", ()))
    return Result(**values)
