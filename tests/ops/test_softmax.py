from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from eggsearch.ops import get_op
from eggsearch.ops.base import torch_dtype
from eggsearch.verify import compare
from tests.ops.structure_check import assert_structure_correct

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "softmax.yaml"
# Odd shapes: primes and non-multiples of every block size; one row shorter than a warp.
SHAPES = [(1, 7), (13, 257), (5, 1031)]
LONG = (3, 4099)  # many column blocks: exercises the loops of the online structure
DTYPES = ["fp16", "bf16", "fp32"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"num_warps": 4, "EVICT": ""},
                                    {"num_warps": 1, "EVICT": "evict_first"}])
def test_one_pass(shape, dtype, config):
    assert_structure_correct("softmax", "one_pass", shape, dtype, config)


@pytest.mark.parametrize("shape", [*SHAPES, LONG])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_N": 256, "num_warps": 4, "num_stages": 1},
                                    {"BLOCK_N": 1024, "num_warps": 8, "num_stages": 3}])
def test_online(shape, dtype, config):
    assert_structure_correct("softmax", "online", shape, dtype, config)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_M": 4, "num_warps": 4},
                                    {"BLOCK_M": 2, "num_warps": 1}])
def test_multi_row(shape, dtype, config):
    assert_structure_correct("softmax", "multi_row", shape, dtype, config)


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_online_rescales_running_max_on_large_values(dtype):
    """Rows whose exp overflows fp32 without the max shift, and whose max moves every block."""
    op = get_op("softmax")
    problem = op.problem(LONG, dtype)
    (x,) = op.make_inputs(problem, 0, "cpu")
    x = x.float() * 30
    x[0] = torch.linspace(-100.0, 100.0, LONG[1])  # ascending: a new max in every block
    x = x.to(torch_dtype(dtype))
    truth = op.truth(x)
    outs = {}
    for structure, config in [("one_pass", {"num_warps": 4, "EVICT": ""}),
                              ("online", {"BLOCK_N": 256, "num_warps": 4, "num_stages": 1})]:
        out = torch.full_like(x, float("nan"))
        op.structures[structure](x, out=out, **config)
        check = compare(out, truth, op.tolerance(problem))
        assert check.ok, f"{structure}: {check.message}"
        outs[structure] = out.double()
    assert torch.allclose(outs["online"], outs["one_pass"], atol=1e-3, rtol=1e-2)


def test_seeds_list_exactly_the_declared_params():
    space = yaml.safe_load(SPACE.read_text())
    op = get_op("softmax")
    assert space["op"] == "softmax"
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

    op = get_op("softmax")
    env = {**op.variables(op.problem(shape, "fp16")), **load_hardware()[gpu].variables()}
    structures = yaml.safe_load(SPACE.read_text())["structures"]
    selected = load_rules().select("softmax", list(structures), env)
    assert selected
    for name, entry in structures.items():
        space = parse_structure_space(entry, name, set(env))
        assert space.enumerate(env)[0], f"{name}: no feasible config at {shape} on {gpu}"
        if name in selected:
            assert any(not space.violations(dict(seed), env) for seed in space.seeds), (
                f"{name}: no seed is feasible at {shape} on {gpu}")
