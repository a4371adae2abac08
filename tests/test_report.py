"""Reports: an HTML page whose PNGs exist, for a run from ``run`` and for a directory of runs
(GPU-like records: speedup and roofline charts); the study stays readable through Optuna's own
storage API, as optuna-dashboard reads it; bad input gets one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from eggsearch.cli import main
from tests.fixtures.recorded_runs import H100, make_run

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code


def images(page: Path) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "run"
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "eggsearch", "run", "--op", "softmax", "--shape",
                        "9x300", "--trials", "4", "--backend", "interpreter", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_report_of_a_run(real_run, capsys):
    assert cli("report", str(real_run)) == 0
    page = real_run / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    names = images(page)
    assert {"run-history.png", "run-best.png", "status.png"} <= set(names)
    for name in names:  # relative paths, next to the page, real PNGs
        assert "/" not in name and (page.parent / name).read_bytes()[:4] == b"\x89PNG"
    assert "softmax 9x300 fp16" in text and "no speedup or roofline is claimed" in text


def test_storage_opens_with_optunas_own_api(real_run):
    """What optuna-dashboard does: open the storage URL, list studies, read every trial."""
    summary = json.loads((real_run / "summary.json").read_text())
    storage = optuna.storages.get_storage(f"sqlite:///{real_run / 'study.db'}")
    studies = storage.get_all_studies()
    assert [s.study_name for s in studies] == [summary["study"]["name"]]
    trials = storage.get_all_trials(studies[0]._study_id, deepcopy=False)
    assert len(trials) == summary["trials"]["total"] == 4
    for t in trials:
        json.dumps(t.user_attrs)  # the dashboard serializes them
        assert {"structure", "config", "config_key", "status"} <= set(t.user_attrs)
        assert set(t.params) == set(t.distributions) and "structure" in t.params
    best = optuna.load_study(study_name=summary["study"]["name"],
                             storage=f"sqlite:///{real_run / 'study.db'}").best_trial
    assert best.user_attrs["config"] == summary["best"]["config"]


def test_report_of_many_runs_with_gpu_records(tmp_path):
    root = tmp_path / "model"
    for i, (op, shape, ms) in enumerate([("matmul", "4096x4096x4096", 0.2),
                                         ("softmax", "8192x8192", 0.04)]):
        trials = [("tiled", {"BLOCK_M": 64 << (j % 3), "num_warps": 4}, ms * (1 + j / 5))
                  for j in range(6)] + [("splitk", {"BLOCK_M": 64, "num_warps": 8}, "timeout")]
        make_run(root / f"shape{i}" / "run", op, shape, "fp16", trials, device=H100,
                 pytorch_ms=ms * 1.1, flops=2 * 4096**3 if op == "matmul" else 5 * 8192**2,
                 min_bytes=6 * 4096**2 if op == "matmul" else 4 * 8192**2)
    (tmp_path / "elsewhere").mkdir()
    assert cli("report", str(root), "--out", str(tmp_path / "elsewhere" / "rep")) == 0
    page = tmp_path / "elsewhere" / "rep" / "index.html"
    names = images(page)
    assert {"speedup.png", "roofline.png", "status.png", "shape0-run-history.png",
            "shape1-run-importance.png"} <= set(names)
    assert all((page.parent / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    text = page.read_text()
    assert "1.10x" in text and "shape1/run" in text and "timeout 1" in text
    assert not (root / "report").exists()


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such run directory"),
    ("empty", "no run directory (with summary.json)"),
    ("no_study", "pass --storage URL"),
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, setup, message):
    target = tmp_path / "target"
    if setup != "missing":
        target.mkdir()
    if setup == "no_study":
        (target / "summary.json").write_text(json.dumps(
            {"op": "softmax", "study": {"name": "s", "storage": "postgresql://***@db/x"}}))
    before = sorted(tmp_path.rglob("*"))
    assert cli("report", str(target)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(tmp_path.rglob("*")) == before
