"""Budget sweeps: fresh studies per budget and sampler, each distinct config measured once and
replayed (simulation mode), the best known from an exhaustive pass, files, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eggsearch.backends.base import Backend
from eggsearch.cli import main
from eggsearch.errors import UsageError
from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.plan import SearchPlan
from eggsearch.records import Measurement, Status
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.space import Param, StructureSpace
from eggsearch.structures import Structure
from eggsearch.sweep import MeasurementCache, ReplayBackend, _one_study

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "tests" / "fixtures" / "sweep_spaces"
SWEEP = ["sweep", "--op", "rmsnorm", "--backend", "interpreter", "--search-spaces", str(SPACES),
         "--structure", "one_pass", "--structure", "looped"]


def cli(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code


class FakeBackend(Backend):
    """Times set by the test (ms = 10 / num_warps, so more warps is faster); counts calls."""

    name = "fake"
    gpu_times = False

    def __init__(self):
        self.calls: list[dict] = []

    def start(self) -> dict:
        return {"name": "fake"}

    def evaluate(self, problem, structure, config, seeds) -> Measurement:
        self.calls.append(dict(config))
        if config["num_warps"] == 16:
            return Measurement(Status.INCORRECT, message="wrong")
        return Measurement(Status.OK, 10.0 / config["num_warps"], timer="fake")

    def baseline(self, problem, seed) -> Measurement:
        return Measurement(Status.OK, 1.0)


@pytest.fixture
def plan_env():
    op = get_op("rmsnorm")
    problem = op.problem((7, 130), "fp32")
    hw = load_hardware()["interpreter"]
    space = StructureSpace((Param("num_warps", "pow2", (1, 2, 4, 8, 16)),), (),
                           ((("num_warps", 1),),))  # the expert seed is the slowest config
    structure = Structure("rmsnorm", "good", "tests.fixtures.faulty_rmsnorm", "launch_good",
                          space)
    plan = SearchPlan([structure], load_rules(), {**op.variables(problem), **hw.variables()})
    return plan, problem, roofline(op, problem, hw)


def test_studies_replay_measurements_and_measure_each_config_once(tmp_path, plan_env):
    plan, problem, roof = plan_env
    inner = FakeBackend()
    cache = MeasurementCache(tmp_path / "m.jsonl", {"problem": "p"}, {"good": "h1"})
    backend = ReplayBackend(inner, cache)
    rows = [_one_study(plan, problem, backend, roof, sampler, budget, seed)
            for sampler in ("grid", "random", "tpe") for budget in (1, 5) for seed in (0, 1)]
    keys = [json.dumps(c, sort_keys=True) for c in inner.calls]
    assert len(keys) == len(set(keys)) == plan.size() == 5  # each config measured once
    assert backend.measured == 5 and backend.replayed > 0
    grid1, grid5 = rows[0], rows[2]
    assert grid1["best_ms"] == 10.0 and grid1["trials"] == 1  # only the seed
    assert grid5["best_ms"] == 10.0 / 8  # saw every config; num_warps 16 is incorrect
    assert all(r["best_ms"] in {10.0, 5.0, 2.5, 1.25} for r in rows)
    # The cache file brings the measurements back, unless the kernel's source changed.
    again = MeasurementCache(tmp_path / "m.jsonl", {"problem": "p"}, {"good": "h1"})
    assert again.entries == cache.entries
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"key": "cut short by a kill')
    assert len(MeasurementCache(tmp_path / "m.jsonl", {"problem": "p"}, {"good": "h1"})
               .entries) == 5
    assert not MeasurementCache(tmp_path / "m.jsonl", {"problem": "p"}, {"good": "h2"}).entries
    with pytest.raises(UsageError, match="holds measurements of"):
        MeasurementCache(tmp_path / "m.jsonl", {"problem": "q"}, {"good": "h1"})


def test_sweep_end_to_end_on_the_interpreter(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli(*SWEEP, "--budgets", "1,2,4", "--samplers", "random,grid", "--repeats", "2",
               "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "simulation mode" in printed and "every config of the pruned space" in printed
    info = json.loads((out / "sweep.json").read_text())
    assert info["exhaustive"] and info["space_size"] == 4 and info["best_known"]["source"] == \
        "exhaustive"
    assert info["measured"] == info["measured_now"] == 4 and info["replayed"] > 0
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2
    times = {json.loads(line)["measurement"]["time_ms"]
             for line in (out / "measurements.jsonl").read_text().splitlines()[1:]}
    best = float(info["best_known"]["time_ms"])
    assert best == min(times)
    for r in rows:
        assert float(r["best_ms"]) in times  # replayed, never measured again
        assert 0 < float(r["quality"]) <= 1 and float(r["best_known_ms"]) == best
    grid4 = [r for r in rows if r["sampler"] == "grid" and r["budget"] == "4"]
    assert all(float(r["quality"]) == 1.0 for r in grid4)  # grid saw the whole space
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # A second sweep there measures nothing again; without the exhaustive pass it says so.
    assert cli(*SWEEP, "--budgets", "2", "--samplers", "tpe", "--repeats", "1",
               "--exhaustive-limit", "0", "--out", str(out)) == 0
    info = json.loads((out / "sweep.json").read_text())
    assert info["measured_now"] == 0 and info["best_known"]["source"] == "best measured"
    assert "best of 4 measured configs" in capsys.readouterr().out
    # Confirmation: the top 2 configs and each study's best timed again together; the
    # qualities are then computed from those times, the single-shot ones kept beside them.
    assert cli(*SWEEP, "--budgets", "1,2", "--samplers", "random", "--repeats", "2",
               "--confirm-top", "2", "--confirm-rounds", "3", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "confirmed: the 2 fastest measured configs" in printed
    assert "from single measurements" in printed
    info = json.loads((out / "sweep.json").read_text())
    conf = info["confirmation"]
    assert info["best_known"]["source"] == "confirmed" and conf["rounds"] == 3
    assert all(len(r) == 3 for r in conf["rounds_ms"].values())
    assert info["best_known"]["time_ms"] == min(conf["times_ms"].values())
    ranked = sorted(times)
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        key = f"{r['best_structure']}:" if r["best_structure"] else None
        assert key and any(k.startswith(key) for k in conf["times_ms"])
        assert float(r["quality"]) == pytest.approx(
            info["best_known"]["time_ms"] / float(r["confirmed_ms"]))
        assert float(r["quality_single"]) == pytest.approx(ranked[0] / float(r["best_ms"]))


@pytest.mark.parametrize("args, message", [
    (["--budgets", "8,x"], "--budgets '8,x': expected positive integers"),
    (["--budgets", "0,8"], "expected positive integers"),
    (["--budgets", "-4"], "expected positive integers"),
    (["--samplers", "tpe,annealing"], "unknown sampler 'annealing'"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--exhaustive-limit", "-1"], "--exhaustive-limit"),
    (["--confirm-top", "-1"], "--confirm-top must not be negative"),
    (["--confirm-rounds", "0"], "--confirm-rounds must be at"),
    (["--op", "convolution"], "unknown op 'convolution'"),
    (["--shape", "12x"], "malformed shape"),
    (["--structure", "three_pass"], "unknown structure"),
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "sweep"
    assert cli(*SWEEP, "--out", str(out), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_sweep_refuses_another_problems_measurements(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "measurements.jsonl").write_text(json.dumps({"header": {"problem": "other"}}) + "\n")
    assert cli(*SWEEP, "--out", str(out), "--budgets", "1") == 2
    assert "holds measurements of" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["measurements.jsonl"]
