import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.settings import Settings


def test_defaults_follow_the_seed():
    s = Settings.from_env({})
    assert s.max_memory_mb is None
    assert s.min_required_memory_mb is None  # from the cost model; the seed's 400 only when set
    assert s.tier_policy == "measured" and s.admission_wait_s == 120
    assert s.max_video_duration_s == 300
    assert s.max_resolution_height == 1080
    assert s.default_bitrate_kbps == 800
    assert s.data_dir == Path("data")
    assert s.tts_engine == "auto"
    assert s.max_text_chars == 2000
    assert s.admin_token is None


def test_values_are_read():
    s = Settings.from_env(
        {
            "MAX_MEMORY_MB": "1024",
            "MIN_REQUIRED_MEMORY_MB": "200",
            "MAX_VIDEO_DURATION": "60",
            "MAX_RESOLUTION_HEIGHT": "720",
            "DEFAULT_BITRATE": "1.5M",
            "DATA_DIR": "/tmp/x",
            "TTS_ENGINE": "ESPEAK",
            "MAX_TEXT_CHARS": "500",
            "ADMIN_TOKEN": "secret",
            "JOB_LEASE_S": "30",
            "TIER_POLICY": "Seed",
            "ADMISSION_WAIT_S": "30",
        }
    )
    assert (s.max_memory_mb, s.min_required_memory_mb, s.max_video_duration_s) == (1024, 200, 60)
    assert (s.max_resolution_height, s.default_bitrate_kbps) == (720, 1500)
    assert (s.data_dir, s.tts_engine, s.max_text_chars, s.admin_token) == (Path("/tmp/x"), "espeak", 500, "secret")
    assert s.job_lease_s == 30
    assert (s.tier_policy, s.admission_wait_s) == ("seed", 30)


@pytest.mark.parametrize("raw, kbps", [("800k", 800), ("800K", 800), ("2M", 2000), ("640000", 640)])
def test_bitrate_units(raw, kbps):
    assert Settings.from_env({"DEFAULT_BITRATE": raw}).default_bitrate_kbps == kbps


@pytest.mark.parametrize(
    "name, value",
    [
        ("MAX_MEMORY_MB", "lots"),
        ("MAX_MEMORY_MB", "10"),
        ("MIN_REQUIRED_MEMORY_MB", "-1"),
        ("TIER_POLICY", "folklore"),
        ("ADMISSION_WAIT_S", "0"),
        ("MAX_VIDEO_DURATION", "0"),
        ("MAX_VIDEO_DURATION", "4.5"),
        ("MAX_RESOLUTION_HEIGHT", "100"),
        ("MAX_RESOLUTION_HEIGHT", "8000"),
        ("DEFAULT_BITRATE", "fast"),
        ("DEFAULT_BITRATE", "5k"),
        ("TTS_ENGINE", "festival"),
        ("MAX_TEXT_CHARS", "0"),
        ("MAX_STORAGE_MB", "x"),
        ("JOB_LEASE_S", "1"),
        ("JOB_LEASE_S", "soon"),
    ],
)
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)
    assert repr(value) in str(caught.value) or value in str(caught.value)


def test_blank_values_mean_default():
    assert Settings.from_env({"MAX_MEMORY_MB": "  ", "TTS_ENGINE": ""}) == Settings.from_env({})


def test_numpy_starts_no_blas_threads_under_the_engine():
    """The engine never does matrix work: importing it keeps NumPy's OpenBLAS to the calling thread."""
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    code = "import engine, numpy, os; print(len(os.listdir('/proc/self/task')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "1"
