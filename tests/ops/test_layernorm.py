from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from eggsearch.ops import get_op
from eggsearch.verify import compare
from tests.ops.structure_check import assert_structure_correct

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "layernorm.yaml"
# Odd shapes: primes and non-multiples of every block size; one row shorter than a warp.
SHAPES = [(1, 7), (13, 257), (5, 1031)]
LONG = (3, 4099)  # many column blocks: exercises the loops of the looped structure
DTYPES = ["fp16", "bf16", "fp32"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"num_warps": 4, "EVICT": "", "CTAS_PER_SM": 0},
                                    {"num_warps": 1, "EVICT": "evict_first", "CTAS_PER_SM": 4}])
def test_one_pass(shape, dtype, config):
    assert_structure_correct("layernorm", "one_pass", shape, dtype, config)


@pytest.mark.parametrize("shape", [*SHAPES, LONG])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_N": 256, "num_warps": 4, "num_stages": 1},
                                    {"BLOCK_N": 1024, "num_warps": 8, "num_stages": 3}])
def test_looped(shape, dtype, config):
    assert_structure_correct("layernorm", "looped", shape, dtype, config)


@pytest.mark.parametrize(("structure", "config"), [
    ("one_pass", {"num_warps": 4, "EVICT": "", "CTAS_PER_SM": 0}),
    ("looped", {"BLOCK_N": 256, "num_warps": 4, "num_stages": 1}),
])
def test_variance_survives_a_large_mean(structure, config):
    """|mean| / std = 1000: E[x^2] - E[x]^2 in fp32 would lose ~20 of 24 bits and fail."""
    op = get_op("layernorm")
    problem = op.problem(LONG, "fp32")
    x, w, b = op.make_inputs(problem, 0, "cpu")
    x = x + 1000.0
    out = torch.full_like(x, float("nan"))
    op.structures[structure](x, w, b, out=out, **config)
    check = compare(out, op.truth(x, w, b), op.tolerance(problem))
    assert check.ok, check.message


def test_seeds_list_exactly_the_declared_params():
    space = yaml.safe_load(SPACE.read_text())
    op = get_op("layernorm")
    assert space["op"] == "layernorm"
    assert set(space["structures"]) == set(op.structures)
    for name, entry in space["structures"].items():
        params = set(entry["params"])
        assert entry["seeds"], f"{name} has no seeds"
        for seed in entry["seeds"]:
            assert set(seed) == params, f"{name} seed {seed} vs params {sorted(params)}"
        # Every declared tunable is a keyword of the launcher, and every keyword it requires
        # is declared.
        kwargs = {p.name: p for p in inspect.signature(op.structures[name]).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "out"}
        assert params <= kwargs.keys(), f"{name}: {params - kwargs.keys()} not in the launcher"
        required = {k for k, p in kwargs.items() if p.default is inspect.Parameter.empty}
        assert required <= params, f"{name}: launcher needs {required - params}"


@pytest.mark.parametrize(("gpu", "shape"), [("H100-SXM", (8192, 8192)),
                                            ("H100-SXM", (32768, 1024)),
                                            ("interpreter", (37, 301))])
def test_constraints_leave_feasible_configs_and_seeds(gpu, shape):
    """Every structure keeps feasible configs; every one the expert rules select has a seed."""
    from eggsearch.hardware import load_hardware
    from eggsearch.rules import load_rules
    from eggsearch.space import parse_structure_space

    op = get_op("layernorm")
    env = {**op.variables(op.problem(shape, "fp16")), **load_hardware()[gpu].variables()}
    structures = yaml.safe_load(SPACE.read_text())["structures"]
    selected = load_rules().select("layernorm", list(structures), env)
    assert selected
    for name, entry in structures.items():
        space = parse_structure_space(entry, name, set(env))
        assert space.enumerate(env)[0], f"{name}: no feasible config at {shape} on {gpu}"
        if name in selected:
            assert any(not space.violations(dict(seed), env) for seed in space.seeds), (
                f"{name}: no seed is feasible at {shape} on {gpu}")
