"""The run summary: which speedup is claimed, and how the table says where it came from."""

from __future__ import annotations

import optuna
import pytest

from eggsearch.ops import get_op
from eggsearch.records import Measurement, Status
from eggsearch.roofline import Roofline
from eggsearch.summary import build_summary, format_table

SETTINGS = {"storage": "sqlite:///x.db", "sampler": "tpe", "seed": 0}


def summary_of(head, backend="gpu"):
    op = get_op("softmax")
    problem = op.problem((64, 64), "fp16")
    study = optuna.create_study()
    m = {"time_ms": 0.20, "p20_ms": 0.19, "p80_ms": 0.21, "rel_err": 1e-4,
         "max_abs_err": 1e-3, "compile_s": 1.0}
    study.add_trial(optuna.trial.create_trial(
        value=0.20, user_attrs={"status": "ok", "structure": "one_pass",
                                "config": {"num_warps": 4}, "measurement": m}))
    baseline = Measurement(Status.OK, 0.18, 0.17, 0.19, rel_err=1e-4)
    roof = Roofline(1.0, 1e6, 1e-5, None, "memory")
    return build_summary(op, problem, study, {"name": "GPU"}, "H200", backend, baseline, roof,
                         SETTINGS, 1.0, {}, head)


def test_speedup_comes_from_the_head_to_head_when_it_ran():
    head = {"trial": 0, "best_ms": 0.175, "pytorch_ms": 0.180, "speedup": 0.180 / 0.175,
            "rounds": 6, "best_rounds_ms": [], "pytorch_rounds_ms": [], "timer": "cuda-events"}
    s = summary_of(head)
    assert s["study_speedup"] == pytest.approx(0.9)
    assert s["speedup"] == pytest.approx(0.180 / 0.175)
    table = format_table(s)
    assert "1.03x head-to-head (6 alternating rounds: 175.0 us vs 180.0 us); 0.90x in the study" \
        in table


def test_without_a_head_to_head_the_study_speedup_stands():
    s = summary_of(None)
    assert s["speedup"] == s["study_speedup"] == pytest.approx(0.9)
    assert "speedup vs PyTorch  0.90x" in format_table(s)


def test_a_failed_head_to_head_is_shown_and_claims_nothing():
    s = summary_of({"trial": 0, "error": "RuntimeError: boom"})
    assert s["speedup"] == pytest.approx(0.9)
    assert "head-to-head        failed: RuntimeError: boom" in format_table(s)


def test_interpreter_claims_no_speedup():
    s = summary_of(None, backend="interpreter")
    assert s["speedup"] is None and s["study_speedup"] is None
