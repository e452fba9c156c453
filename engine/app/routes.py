"""HTTP routes served beside the pages by the same `streamlit run` process (st.App routes).

GET /api/stats and GET /api/storage answer the CLI's JSON (stats cached for a few seconds);
GET /api/history.csv streams the history as CSV; POST /api/cleanup needs
`Authorization: Bearer $ADMIN_TOKEN` and is disabled when no token is set.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.app.resources import forget_recent, recent, shared_store
from engine.choices import WINDOWS
from engine.history.storage import cleanup, storage_report
from engine.settings import Settings

VIDEO_ROUTE = "/videos"
VIDEO_NAME = re.compile(r"quote-[0-9a-f]{32}\.mp4")


def api_routes(load_settings: Callable[[], Settings] = Settings.from_env) -> list[Route]:
    # The figures' modules bring SQLAlchemy (22 MB, 0.13 s): loaded when first asked for, not at start-up.
    def get_stats(request: Request) -> JSONResponse:
        from engine.history.stats import stats

        settings = load_settings()
        window = request.query_params.get("window", "all")
        if window not in WINDOWS:
            return JSONResponse({"error": f"window {window!r} is not offered; use {', '.join(WINDOWS)}"}, 400)
        store = shared_store(settings)
        return JSONResponse(recent((store.url, window), lambda: stats(store, window)))

    def get_history_csv(request: Request) -> Response:
        """The history (filtered like the page: window, tier, method, status) as CSV, streamed."""
        from engine.history.stats import Filters
        from engine.history.views import export_csv

        settings = load_settings()
        params = request.query_params
        window = params.get("window", "all")
        if window not in WINDOWS:
            return JSONResponse({"error": f"window {window!r} is not offered; use {', '.join(WINDOWS)}"}, 400)
        chosen = Filters.window(window, tiers=tuple(params.getlist("tier")), methods=tuple(params.getlist("method")),
                                statuses=tuple(params.getlist("status")))  # fmt: skip
        name = 'attachment; filename="quote-to-speak-history.csv"'
        return StreamingResponse(export_csv(shared_store(settings), chosen), media_type="text/csv",
                                 headers={"Content-Disposition": name})  # fmt: skip

    def get_storage(_request: Request) -> JSONResponse:
        settings = load_settings()
        store = shared_store(settings)
        return JSONResponse(recent((store.url, "storage"), lambda: storage_report(settings, store)))

    async def post_cleanup(request: Request) -> JSONResponse:
        settings = load_settings()
        refusal = _refuse(request.headers.get("authorization", ""), settings.admin_token)
        if refusal is not None:
            return refusal
        raw = request.query_params.get("older_than_days")
        try:
            days = float(raw) if raw is not None else None
        except ValueError:
            return JSONResponse({"error": f"older_than_days={raw!r} is not a number"}, 400)
        store = shared_store(settings)
        report = cleanup(settings, store, older_than_days=days)
        forget_recent(store.url)
        return JSONResponse(report.to_json())

    def get_video(request: Request) -> Response:
        """A finished video, streamed from disk (with range requests), never loaded whole."""
        path = video_path(load_settings(), request.path_params["name"])
        if path is None:
            return JSONResponse({"error": "no such video; it may have been cleaned up"}, 404)
        download = request.query_params.get("download") is not None
        disposition = f'attachment; filename="{path.name}"' if download else "inline"
        return FileResponse(path, media_type="video/mp4", headers={"Content-Disposition": disposition})

    return [
        Route(f"{VIDEO_ROUTE}/{{name}}", get_video, methods=["GET", "HEAD"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/history.csv", get_history_csv, methods=["GET"]),
        Route("/api/storage", get_storage, methods=["GET"]),
        Route("/api/cleanup", post_cleanup, methods=["POST"]),
    ]


def video_url(path: Path) -> str:
    """The path under which `get_video` serves an output (relative to the server's root)."""
    return f"{VIDEO_ROUTE}/{path.name}"


def video_path(settings: Settings, name: str) -> Path | None:
    """The output file behind a video name, only when it is one of ours inside DATA_DIR/outputs."""
    if not VIDEO_NAME.fullmatch(name):
        return None
    folder = settings.outputs_dir.resolve()
    path = folder / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder:
        return None
    return path


def _refuse(header: str, token: str | None) -> JSONResponse | None:
    if not token:
        return JSONResponse({"error": "cleanup is disabled: set ADMIN_TOKEN to enable it"}, 403)
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return JSONResponse(
            {"error": "send Authorization: Bearer <ADMIN_TOKEN>"}, 401, headers={"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return JSONResponse({"error": "the admin token is wrong"}, 403)
    return None
