"""The /api routes against a real `streamlit run` on a loopback port, beside the pages."""

import json

import pytest

from tests.helpers import run_cli
from tests.server import StreamlitServer, request

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    data = tmp_path_factory.mktemp("http") / "data"
    return {"DATA_DIR": str(data), "TTS_ENGINE": "espeak"}


@pytest.fixture(scope="module")
def server(data_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with StreamlitServer({**data_env, "ADMIN_TOKEN": TOKEN}, log) as running:
        yield running


@pytest.fixture(scope="module")
def two_videos(data_env):
    """Two generations in the history, one per method, made once for the module: each test that
    reads them asks for them, so none depends on another having run first (cleanup removes the
    videos; the history rows stay)."""
    for args in (["--tier", "low"], ["--tier", "low", "--method", "moviepy"]):
        assert run_cli("generate", "Stay hungry.", *args, env=data_env).returncode == 0


def test_stats_match_the_cli(server, data_env, two_videos):
    status, body = request(f"{server.url}/api/stats")
    assert status == 200
    over_http = json.loads(body)
    from_cli = json.loads(run_cli("stats", "--json", env=data_env).stdout)
    assert over_http == from_cli
    assert over_http["total"] == 2 and over_http["methods"] == {"ffmpeg": 1, "moviepy": 1}


def test_stats_window_is_checked(server):
    assert request(f"{server.url}/api/stats?window=day")[0] == 200
    status, body = request(f"{server.url}/api/stats?window=year")
    assert status == 400 and b"window" in body


def test_storage(server):
    status, body = request(f"{server.url}/api/storage")
    data = json.loads(body)
    assert status == 200
    assert {"outputs", "temp", "database_bytes", "disk_free_bytes", "memory"} <= set(data)
    assert {"available_mb", "app_rss_mb", "container_limit_mb"} <= set(data["memory"])


def test_pages_still_serve_beside_the_routes(server):
    status, body = request(f"{server.url}/")
    assert status == 200 and b"<html" in body.lower()


@pytest.mark.parametrize(
    "headers, code",
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": f"Basic {TOKEN}"}, 401)],
)
def test_cleanup_refused_without_the_token_changes_nothing(server, headers, code):
    before = json.loads(request(f"{server.url}/api/storage")[1])["outputs"]
    status, _ = request(f"{server.url}/api/cleanup?older_than_days=0", "POST", headers)
    assert status == code
    assert json.loads(request(f"{server.url}/api/storage")[1])["outputs"] == before


def test_cleanup_with_the_token(server, two_videos):
    assert json.loads(request(f"{server.url}/api/storage")[1])["outputs"]["count"] >= 1
    status, body = request(f"{server.url}/api/cleanup?older_than_days=0", "POST", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and json.loads(body)["removed_outputs"] >= 1
    assert json.loads(request(f"{server.url}/api/storage")[1])["outputs"]["count"] == 0


def test_cleanup_is_disabled_when_no_token_is_set(data_env, tmp_path):
    with StreamlitServer(data_env, tmp_path / "log") as bare:
        status, body = request(f"{bare.url}/api/cleanup", "POST", {"Authorization": "Bearer anything"})
    assert status == 403 and b"ADMIN_TOKEN" in body


def test_the_history_streams_as_csv_with_the_pages_filters(server, data_env, two_videos):
    import csv
    import io

    status, body = request(f"{server.url}/api/history.csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert status == 200 and len(rows) >= 2 and {"id", "tier", "method", "peak_rss_mb"} <= set(rows[0])
    status, body = request(f"{server.url}/api/history.csv?window=day&method=moviepy")
    [only] = list(csv.DictReader(io.StringIO(body.decode())))
    assert status == 200 and only["method"] == "moviepy"
    assert request(f"{server.url}/api/history.csv?window=decade")[0] == 400
