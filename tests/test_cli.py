"""The command line end to end on the interpreter, and its answers to bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "eggsearch", *args], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=600)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_list_ops():
    r = cli("list-ops")
    assert r.returncode == 0, r.stderr
    for op in ("matmul", "softmax", "layernorm", "rmsnorm"):
        assert op in r.stdout


@pytest.mark.parametrize("op, extra", [
    ("matmul", ["--dtype", "fp32"]),
    ("softmax", ["--shape", "9x3000"]),
    ("layernorm", ["--dtype", "bf16"]),
    ("rmsnorm", []),
])
def test_run_end_to_end(tmp_path, op, extra):
    out = tmp_path / "run"
    r = cli("run", "--op", op, "--trials", "3", "--backend", "interpreter", "--out", str(out),
            "--json", *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["best"] is not None and summary["best"]["time_ms"] > 0
    assert summary["backend"] == "interpreter" and summary["speedup"] is None
    assert summary["trials"]["total"] == 3
    assert summary == json.loads((out / "summary.json").read_text()) | {
        "run_dir": summary["run_dir"]}
    records = lines(out / "trials.jsonl")
    assert len(records) == 3 and all("status" in rec for rec in records)
    assert (out / "study.db").exists() and (out / "settings.json").exists()


@pytest.mark.gpu
def test_gpu_run_ends_with_a_head_to_head(tmp_path):
    """On a GPU the speedup comes from the alternating rounds, the study's ratio beside it."""
    out = tmp_path / "run"
    # eggsearch first; packages the host put on PYTHONPATH (the GPU machine's optuna) after it
    env = {**os.environ, "TRITON_INTERPRET": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "eggsearch", "run", "--op", "softmax", "--shape",
                        "2048x2048", "--trials", "4", "--backend", "gpu", "--confirm-rounds",
                        "4", "--out", str(out), "--json"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    head = s["head_to_head"]
    assert head["rounds"] == 4 and len(head["pytorch_rounds_ms"]) == 4, head
    assert s["speedup"] == head["speedup"] == head["pytorch_ms"] / head["best_ms"]
    assert s["study_speedup"] == s["pytorch"]["time_ms"] / s["best"]["time_ms"]
    # The study's fastest distinct configs were timed side by side; the best is their winner.
    assert 1 <= len(head["candidates"]) <= 4 and s["best"]["chosen_by"] == "head-to-head"
    assert s["best"]["trial"] == head["trial"] == min(
        head["candidates"], key=lambda c: c["median_ms"] or float("inf"))["trial"]


def test_table_output_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--op", "rmsnorm", "--backend", "interpreter", "--out", str(out)]
    r = cli(*args, "--trials", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "best structure" in r.stdout and "not claimed" in r.stdout
    first = lines(out / "trials.jsonl")
    r = cli(*args, "--trials", "4", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["trials"]["total"] == 4  # 2 kept from the first run, 2 new
    records = lines(out / "trials.jsonl")
    assert records[:2] == first and [rec["trial"] for rec in records] == [0, 1, 2, 3]


def test_nothing_correct_exits_1_and_keeps_records(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--op", "rmsnorm", "--backend", "interpreter", "--out", str(out),
            "--trials", "2", "--trial-timeout", "0.001")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "no correct kernel found" in r.stdout
    assert [rec["status"] for rec in lines(out / "trials.jsonl")] == ["timeout", "timeout"]


def _write(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "rmsnorm.yaml").write_text(text)
    return path


GOOD_SPACE = (ROOT / "search_spaces" / "rmsnorm.yaml").read_text()


@pytest.mark.parametrize("args, message", [
    (["--op", "convolution"], "unknown op 'convolution'"),
    (["--op", "matmul", "--shape", "12x12"], "malformed shape"),
    (["--op", "matmul", "--shape", "axbxc"], "malformed shape"),
    (["--op", "matmul", "--shape", "0x4x4"], "malformed shape"),
    (["--op", "rmsnorm", "--dtype", "fp8"], "dtype 'fp8'"),
    (["--op", "rmsnorm", "--allow-tf32"], "only applies to --dtype fp32"),
    (["--op", "rmsnorm", "--sampler", "annealing"], "unknown sampler"),
    (["--op", "rmsnorm", "--backend", "tpu"], "unknown backend"),
    (["--op", "rmsnorm", "--trials", "0"], "--trials"),
    (["--op", "rmsnorm", "--trials", "many"], "invalid int"),
    (["--op", "rmsnorm", "--structure", "three_pass"], "unknown structure"),
    (["--op"], "expected one argument"),
    (["--op", "rmsnorm", "--option", "causal=1"], "unknown option(s) causal"),
    (["--op", "rmsnorm", "--option", "causal"], "expected NAME=VALUE"),
    (["--op", "rmsnorm", "--confirm-rounds", "-1"], "--confirm-rounds must not be negative"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, message):
    out = tmp_path / "run"
    r = cli("run", "--backend", "interpreter", "--out", str(out), *args) if "--backend" not in \
        args else cli("run", "--out", str(out), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("text, message", [
    ("op: rmsnorm\nstructures: {one_pass: {params: {num_warps: {pow2: [1, 8]}}\n",
     "does not parse"),
    (GOOD_SPACE.replace("    params:", "    parameters:", 1), "unknown key"),
    (GOOD_SPACE.replace("num_warps * 32 * 64 * 4", "num_warp * 32", 1), "unknown variable"),
    (GOOD_SPACE.replace("num_warps * 32 * 64 * 4", "__import__('os')", 1), "calls something"),
    (GOOD_SPACE.replace("next_pow2(N) >= num_warps * 32", "N < 0", 1) .replace(
        "BLOCK_N >= num_warps * 32", "N < 0"), "no configuration"),
], ids=["yaml", "schema", "variable", "unsafe", "infeasible"])
def test_bad_search_space_one_line_exit_2(tmp_path, text, message):
    spaces = _write(tmp_path / "spaces", text)
    out = tmp_path / "run"
    r = cli("run", "--op", "rmsnorm", "--backend", "interpreter", "--out", str(out),
            "--search-spaces", str(spaces), "--structure", "one_pass", "--structure", "looped")
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()
