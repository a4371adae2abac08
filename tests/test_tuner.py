"""The study loop on the interpreter: faulty candidates fail alone, duplicates are free,
constraints prune before compiling, and a study resumes."""

from __future__ import annotations

import math

import pytest

from eggsearch.backends import InterpreterBackend
from eggsearch.expressions import parse
from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.plan import SearchPlan
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.space import Constraint, Param, StructureSpace
from eggsearch.structures import Structure
from eggsearch.tuner import Budget, enqueue_start, make_sampler, open_study, tune

FAULTY = ["good", "raises", "hangs", "wrong", "partial", "mutates", "crashes",
          "compile_error"]
EXPECTED = {"good": "ok", "raises": "runtime_fault", "hangs": "timeout",
            "wrong": "incorrect", "partial": "incorrect", "mutates": "incorrect",
            "crashes": "runtime_fault", "compile_error": "compile_error"}


def one_config_space() -> StructureSpace:
    return StructureSpace((Param("num_warps", "choices", (4,)),), (),
                          ((("num_warps", 4),),))


@pytest.fixture(scope="module")
def rmsnorm_env():
    op = get_op("rmsnorm")
    problem = op.problem((7, 130), "fp32")
    hw = load_hardware()["interpreter"]
    return op, problem, hw, {**op.variables(problem), **hw.variables()}


def run_study(tmp_path, structures, env, problem, op, hw, sampler="grid", trials=None,
              timeout=20.0, name="s"):
    plan = SearchPlan(structures, load_rules(), env)
    study = open_study(name, f"sqlite:///{tmp_path / 'study.db'}",
                       make_sampler(sampler, 0, trials or plan.size()))
    enqueue_start(study, plan, sampler, trials or plan.size())
    backend = InterpreterBackend(trial_timeout=timeout)
    records = []
    try:
        backend.start()
        tune(study, plan, problem, backend, roofline(op, problem, hw),
             Budget(trials or plan.size()), 0, records.append)
    finally:
        backend.close()
    return study, records


def test_faulty_candidates_fail_alone(tmp_path, rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    structures = [Structure("rmsnorm", name, "tests.fixtures.faulty_rmsnorm",
                            f"launch_{name}", one_config_space(), origin="test")
                  for name in FAULTY]
    study, records = run_study(tmp_path, structures, env, problem, op, hw, timeout=8.0)
    got = {r["structure"]: r["status"] for r in records}
    assert got == EXPECTED
    by_name = {r["structure"]: r for r in records}
    assert "NaN" in by_name["partial"]["measurement"]["message"]
    assert "modified" in by_name["mutates"]["measurement"]["message"]
    assert "worker died" in by_name["crashes"]["measurement"]["message"]
    # The study's best is the one correct candidate, and failures are infinitely slow.
    assert study.best_trial.user_attrs["structure"] == "good"
    failed = [t for t in study.trials if t.user_attrs["status"] not in ("ok",)]
    assert failed and all(math.isinf(t.value) for t in failed)


def test_duplicates_are_answered_from_records(tmp_path, rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    space = StructureSpace((Param("num_warps", "choices", (1, 2, 4)),))
    structures = [Structure("rmsnorm", "good", "tests.fixtures.faulty_rmsnorm", "launch_good",
                            space)]
    plan = SearchPlan(structures, load_rules(), env)
    study = open_study("d", f"sqlite:///{tmp_path / 'study.db'}", make_sampler("random", 0, 3))
    for _ in range(2):
        study.enqueue_trial(plan.encode("good", {"num_warps": 1}))
    backend = InterpreterBackend(trial_timeout=20)
    records = []
    try:
        backend.start()
        tune(study, plan, problem, backend, roofline(op, problem, hw), Budget(2), 0,
             records.append)
    finally:
        backend.close()
    assert [r["status"] for r in records] == ["ok", "duplicate"]
    assert records[1]["duplicate_of"] == 0
    assert records[1]["value_ms"] == pytest.approx(records[0]["value_ms"])
    assert "measurement" not in records[1]  # nothing was compiled or run again


def test_constraints_prune_before_compiling(tmp_path, rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    space = StructureSpace(
        (Param("num_warps", "choices", (1, 2)), Param("num_stages", "choices", (1, 2))),
        (Constraint("same", parse("num_warps == num_stages")),))
    # The launcher would hang: a pruned config must never reach it.
    structures = [Structure("rmsnorm", "hangs", "tests.fixtures.faulty_rmsnorm", "launch_hangs",
                            space)]
    plan = SearchPlan(structures, load_rules(), env)
    assert plan.plans["hangs"].domains["num_warps"] == (1, 2)
    study = open_study("p", f"sqlite:///{tmp_path / 'study.db'}", make_sampler("random", 0, 1))
    study.enqueue_trial({"structure": "hangs", "hangs.num_warps": 2, "hangs.num_stages": 1})
    records = []
    tune(study, plan, problem, None, roofline(op, problem, hw), Budget(1), 0, records.append)
    assert records[0]["status"] == "pruned" and records[0]["violations"] == ["same"]
    assert study.trials[0].state.name == "PRUNED"


def test_stops_when_space_exhausted(tmp_path, rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    space = StructureSpace((Param("num_warps", "choices", (1, 4)),))
    structures = [Structure("rmsnorm", "good", "tests.fixtures.faulty_rmsnorm", "launch_good",
                            space)]
    _, records = run_study(tmp_path, structures, env, problem, op, hw, sampler="grid",
                           trials=50)
    assert [r["status"] for r in records] == ["ok", "ok"]


def test_plan_prunes_with_generic_rules(rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    space = StructureSpace((Param("num_warps", "pow2", (1, 2, 4, 8, 16, 32, 64)),))
    plan = SearchPlan([Structure("rmsnorm", "good", "m", "f", space)], load_rules(), env)
    # threads_per_block (expert_rules/constraints.yaml): 64 warps = 2048 threads > 1024.
    assert plan.plans["good"].domains["num_warps"] == (1, 2, 4, 8, 16, 32)


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "random", "grid"])
def test_every_sampler_survives_failures(tmp_path, rmsnorm_env, sampler):
    op, problem, hw, env = rmsnorm_env
    space = StructureSpace((Param("num_warps", "pow2", (1, 2, 4, 8)),))
    structures = [Structure("rmsnorm", name, "tests.fixtures.faulty_rmsnorm", f"launch_{name}",
                            space) for name in ("good", "raises")]
    study, records = run_study(tmp_path, structures, env, problem, op, hw, sampler=sampler,
                               trials=6)
    assert len(records) == 6
    assert {r["status"] for r in records} <= {"ok", "runtime_fault", "duplicate", "pruned"}
    assert study.best_trial.user_attrs["structure"] == "good"


def test_head_to_head_alternates_rounds_and_reports_failures(rmsnorm_env):
    op, problem, hw, env = rmsnorm_env
    good, raises = (Structure("rmsnorm", name, "tests.fixtures.faulty_rmsnorm",
                              f"launch_{name}", one_config_space()) for name in ("good", "raises"))
    backend = InterpreterBackend(trial_timeout=20)
    try:
        backend.start()
        head = backend.head_to_head(problem, [(raises, {"num_warps": 4}),
                                              (good, {"num_warps": 4})], seed=3, rounds=3)
        failed = backend.head_to_head(problem, [(raises, {"num_warps": 4})], seed=3, rounds=3)
    finally:
        backend.close()
    assert head["rounds"] == 3 and len(head["best_rounds_ms"]) == len(head["pytorch_rounds_ms"])
    # The candidate that raised is reported and left out; the other one wins.
    assert head["best_index"] == 1 and head["medians_ms"][0] is None
    assert set(head["errors"]) == {0} and "RuntimeError" in head["errors"][0]
    assert head["best_ms"] == sorted(head["best_rounds_ms"])[1]  # median of the rounds
    assert head["speedup"] == pytest.approx(head["pytorch_ms"] / head["best_ms"])
    assert head["timer"] == "interpreter-wallclock"
    assert set(failed) == {"error"} and "RuntimeError" in failed["error"]


def test_run_head_to_head_picks_the_fastest_side_by_side_not_the_luckiest_trial(rmsnorm_env):
    """The study's "best" (slow, one lucky measurement) loses to the second in the rounds, and
    the summary then names the second; trials of structures outside the plan and duplicate
    configs are passed over."""
    from types import SimpleNamespace

    import optuna

    from eggsearch.records import Measurement, Status
    from eggsearch.roofline import Roofline
    from eggsearch.runner import _head_to_head
    from eggsearch.summary import build_summary, format_table

    op, problem, hw, env = rmsnorm_env
    structures = {name: Structure("rmsnorm", name, "tests.fixtures.faulty_rmsnorm",
                                  f"launch_{name}", one_config_space())
                  for name in ("good", "slow")}
    plan = SimpleNamespace(plans={n: SimpleNamespace(structure=s) for n, s in structures.items()})
    study = optuna.create_study()
    m = {"time_ms": 1.0, "p20_ms": 1.0, "p80_ms": 1.0, "rel_err": 0.0, "max_abs_err": 0.0,
         "compile_s": 0.0}
    for value, name in [(0.5, "slow"), (0.6, "slow"), (0.7, "gone"), (0.9, "good")]:
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={
            "status": "ok", "structure": name, "config": {"num_warps": 4},
            "config_key": f"{name}|num_warps=4", "measurement": {**m, "time_ms": value}}))
    backend = InterpreterBackend(trial_timeout=30)
    try:
        backend.start()
        head = _head_to_head(study, plan, problem, backend, seed=0, rounds=3, top=4)
        alone = _head_to_head(study, plan, problem, backend, seed=0, rounds=1, top=1)
    finally:
        backend.close()
    assert [c["trial"] for c in head["candidates"]] == [0, 3]  # 1: duplicate, 2: not planned
    assert head["trial"] == 3 and head["study_best_trial"] == 0
    slow, good = (c["median_ms"] for c in head["candidates"])
    assert slow > good + 40 and head["selection"]["best_ms"] == good
    # The reported times come from fresh rounds of the winner alone against PyTorch.
    assert head["rounds"] == len(head["best_rounds_ms"]) == 3
    assert head["best_ms"] == sorted(head["best_rounds_ms"])[1] < slow - 40
    assert head["speedup"] == pytest.approx(head["pytorch_ms"] / head["best_ms"])
    assert [c["trial"] for c in alone["candidates"]] == [0] and alone["trial"] == 0
    assert alone["selection"] is None and alone["rounds"] == 1
    summary = build_summary(op, problem, study, {"name": "CPU"}, "interpreter", "gpu",
                            Measurement(Status.OK, 1.0, 1.0, 1.0), Roofline(1.0, 1.0, 1e-9, None,
                                                                            "memory"),
                            {"storage": "x", "sampler": "tpe", "seed": 0}, 1.0, {}, head)
    assert summary["best"]["trial"] == 3 and summary["best"]["chosen_by"] == "head-to-head"
    assert summary["best"]["structure"] == "good" and summary["best"]["time_ms"] == 0.9
    assert "trial 3 (the study's fastest: 0)" in format_table(summary)
