"""benchmarks/nlp_study/run_device.sh on the CPU with its tiny config (the check the script asks for before a GPU
run), in a real subprocess: STUDY_S stops the sweep with every finished run kept whole, and a rerun resumes it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelbalance.experiments.text import assets

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "nlp_study" / "run_device.sh"


def _spam_installed() -> bool:
    try:
        assets.spam_root()
    except assets.MissingAsset:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _spam_installed(), reason="python -m modelbalance.experiments.text.assets install spam"
)


def _run(workdir: Path, **env) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run(
        ["bash", str(SCRIPT), str(workdir), "tiny"], env=environ, capture_output=True, text=True, timeout=600
    )


def test_run_device_tiny_stops_at_its_deadline_and_resumes(tmp_path):
    stopped = _run(tmp_path, STUDY_S="8")
    assert stopped.returncode == 124, stopped.stdout + stopped.stderr  # timeout's code: the deadline hit
    assert "run_device: tiny exit 124" in stopped.stdout
    runs = tmp_path / "tiny" / "runs"
    for path in runs.glob("*.json") if runs.is_dir() else []:  # whatever finished is whole
        assert json.loads(path.read_text())["status"] == "ok", path
    assert not (tmp_path / "tiny" / "results.csv").exists()

    finished = _run(tmp_path)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    results = pd.read_csv(tmp_path / "tiny" / "results.csv")
    # tiny.toml: 2 sizes x 2 seeds x (baseline, tb), each method tuned over 2 rates on seed 100
    assert len(results[results.selected]) == 8 and set(results.status) == {"ok"}
    assert set(results.method) == {"baseline", "tb"} and set(results.shots) == {2, 4}
    assert len(list(runs.glob("*.json"))) == 8 + 2 * 2 * 2
