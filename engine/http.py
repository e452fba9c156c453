"""HTTP routes served beside the pages by the same `streamlit run` process (st.App routes).

GET /api/stats and GET /api/storage answer the CLI's JSON; POST /api/cleanup needs
`Authorization: Bearer $ADMIN_TOKEN` and is disabled when no token is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.service import shared_store
from engine.settings import Settings
from engine.stats import WINDOWS, stats
from engine.storage import cleanup, storage_report


def api_routes(load_settings: Callable[[], Settings] = Settings.from_env) -> list[Route]:
    def get_stats(request: Request) -> JSONResponse:
        settings = load_settings()
        window = request.query_params.get("window", "all")
        if window not in WINDOWS:
            return JSONResponse({"error": f"window {window!r} is not offered; use hour, day or all"}, 400)
        return JSONResponse(stats(shared_store(settings), window))

    def get_storage(_request: Request) -> JSONResponse:
        settings = load_settings()
        return JSONResponse(storage_report(settings, shared_store(settings)))

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
        report = cleanup(settings, shared_store(settings), older_than_days=days)
        return JSONResponse(report.to_json())

    return [
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/storage", get_storage, methods=["GET"]),
        Route("/api/cleanup", post_cleanup, methods=["POST"]),
    ]


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
