"""bench-problems and run --problem end to end (interpreter), and the scores' arithmetic."""

from __future__ import annotations

import json
import math

import pytest

from eggsearch.errors import UsageError
from eggsearch.problems.bench import (
    bench_problems,
    fast_p,
    format_bench,
    geomean,
    problem_files,
    scores,
)
from eggsearch.problems.check import CheckSettings
from tests.problems.test_check import HERE, cli

SET = HERE / "set"


def test_fast_p_counts_failures_in_the_denominator():
    speedups = [2.5, 1.2, 0.8, None]  # None: incorrect, a cheat, or no answer
    assert fast_p(speedups, 0) == 0.75
    assert fast_p(speedups, 1) == 0.5
    assert fast_p(speedups, 1.5) == 0.25
    assert fast_p(speedups, 2) == 0.25
    assert math.isclose(geomean([2.0, 0.5, 4.0]), 4 ** (1 / 3))
    rows = [{"status": "correct", "speedup": 2.0, "compile_ms": 1.0, "speedup_compile": 0.5},
            {"status": "cheat", "speedup": None, "compile_ms": 2.0, "speedup_compile": None}]
    s = scores(rows)
    assert s["fast_p"]["1"] == 0.5 and s["geomean_speedup"] == 2.0
    assert math.isclose(s["geomean_speedup_failures_as_1"], math.sqrt(2.0))
    assert s["compile"]["fast_p"]["0"] == 0.5 and s["by_status"] == {"cheat": 1, "correct": 1}


def test_problem_ids():
    assert [p.stem for p in problem_files(SET, ["3", "010"])] == ["03_gelu",
                                                                 "10_gemm_bias_relu"]
    with pytest.raises(UsageError, match="no problem with id 99"):
        problem_files(SET, ["99"])


def test_bench_problems_end_to_end_and_resume(tmp_path):
    out = tmp_path / "bench"
    settings = CheckSettings(device="cpu", small=True, compile=False)
    report = bench_problems(SET, settings, ids=["25"], out=out)
    assert report["scores"]["correct"] == 1 and report["interpreter"]
    row = report["results"][0]
    assert row["status"] == "correct" and row["answer_ms"] > 0 and row["eager_ms"] > 0
    assert (out / "answers" / "25_leaky_relu.py").exists() and (out / "table.md").exists()
    again = bench_problems(SET, settings, ids=["25"], out=out)  # same settings: reused
    assert again["results"] == report["results"]
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    table = format_bench(again)
    assert "| fast_0 | 100% |" in table and "not GPU speedups" in table


def test_bench_measures_again_when_the_problem_or_the_code_changed(tmp_path, monkeypatch):
    from eggsearch.problems import bench

    out, problems = tmp_path / "bench", tmp_path / "set"
    problems.mkdir()
    source = (SET / "25_leaky_relu.py").read_text()
    (problems / "25_leaky_relu.py").write_text(source)
    settings = CheckSettings(device="cpu", small=True, compile=False)
    bench_problems(problems, settings, out=out)
    (problems / "25_leaky_relu.py").write_text(source + "\n# edited\n")
    bench_problems(problems, settings, out=out)  # the problem changed: measured again
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(bench, "_code_sha", lambda: "another-version")
    bench_problems(problems, settings, out=out)  # the generator changed: measured again
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    bench_problems(problems, settings, out=out)  # nothing changed: reused
    assert len((out / "results.jsonl").read_text().splitlines()) == 3


def test_bench_bad_input_exit_2(tmp_path):
    r = cli("bench-problems", str(SET), "--ids", "99", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "no problem with id 99" in r.stderr
    assert not (tmp_path / "b").exists()


def test_run_problem_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--problem", str(SET / "03_gelu.py"), "--trials", "1", "--backend",
            "interpreter", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["best"] is not None and summary["check"]["status"] == "correct"
    answer = (out / "ModelNew.py").read_text()
    assert "class ModelNew" in answer and "CONFIG = {'g0_BLOCK'" in answer
    assert (out / "study.db").exists() and (out / "structures" / "fused.py").exists()


def test_run_needs_exactly_one_of_op_and_problem():
    r = cli("run", "--op", "softmax", "--problem", str(SET / "03_gelu.py"))
    assert r.returncode == 2 and "give --op or --problem" in r.stderr
