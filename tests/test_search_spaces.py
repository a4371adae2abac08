"""Every shipped search space loads through the real loader and leaves work to do."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from eggsearch.hardware import load_hardware
from eggsearch.ops import OPS, get_op
from eggsearch.plan import SearchPlan
from eggsearch.proposers import LibraryProposer
from eggsearch.rules import load_rules
from eggsearch.space import parse_structure_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


# Structures whose constraints admit only some dtypes (the wgmma kernel takes 16-bit operands).
SIXTEEN_BIT_ONLY = {("matmul", "wgmma_ws"): ("fp16", "bf16")}


@pytest.mark.parametrize("op_name", list(OPS))
@pytest.mark.parametrize("gpu", ["H100-SXM", "H200", "A100-80GB", "interpreter"])
def test_space_loads_and_is_feasible(op_name, gpu):
    op, rules = get_op(op_name), load_rules()
    hw = load_hardware()[gpu]
    for dtype in op.dtypes:
        problem = op.problem(None, dtype, interpreter=gpu == "interpreter")
        env = {**op.variables(problem), **hw.variables()}
        # Every structure (selection rules aside) has feasible configs at the default shape.
        structures = LibraryProposer(rules, only=list(op.structures)).propose(op, problem, env)
        plan = SearchPlan(structures, rules, env)
        expected = {name for name in op.structures
                    if dtype in SIXTEEN_BIT_ONLY.get((op_name, name), op.dtypes)}
        assert set(plan.plans) == expected, plan.skipped
        assert set(plan.skipped) == set(op.structures) - expected
        # The expert seeds of the structures the rules select are worth something here.
        selected = LibraryProposer(rules).propose(op, problem, env)
        assert selected
        if gpu != "interpreter":
            seeds = SearchPlan(selected, rules, env).seeds()
            assert {name for name, _ in seeds} == {s.name for s in selected}, dtype


@pytest.mark.parametrize("op_name", list(OPS))
def test_seeds_list_exactly_the_declared_params(op_name):
    """A seed sets every declared tunable; every tunable is a keyword of the launcher, and
    every keyword the launcher requires is declared."""
    space = yaml.safe_load((SPACES / f"{op_name}.yaml").read_text())
    op = get_op(op_name)
    assert space["op"] == op_name
    assert set(space["structures"]) == set(op.structures)
    for name, entry in space["structures"].items():
        params = set(entry["params"])
        assert entry["seeds"], f"{name} has no seeds"
        for seed in entry["seeds"]:
            assert set(seed) == params, f"{name} seed {seed} vs params {sorted(params)}"
        signature = inspect.signature(op.structures[name]).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature):
            continue  # a launcher that forwards **config to another one
        kwargs = {p.name: p for p in signature
                  if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "out"}
        assert params <= kwargs.keys(), f"{name}: {params - kwargs.keys()} not in the launcher"
        required = {k for k, p in kwargs.items() if p.default is inspect.Parameter.empty}
        assert required <= params, f"{name}: launcher needs {required - params}"


@pytest.mark.parametrize("op_name", ["softmax", "layernorm", "rmsnorm"])
@pytest.mark.parametrize(("gpu", "shape"), [("H100-SXM", (8192, 8192)),
                                            ("H100-SXM", (32768, 1024)),
                                            ("interpreter", (37, 301))])
def test_row_ops_keep_configs_and_seeds_at_other_shapes(op_name, gpu, shape):
    """Every structure keeps feasible configs; every one the expert rules select has a seed."""
    op = get_op(op_name)
    env = {**op.variables(op.problem(shape, "fp16")), **load_hardware()[gpu].variables()}
    structures = yaml.safe_load((SPACES / f"{op_name}.yaml").read_text())["structures"]
    selected = load_rules().select(op_name, list(structures), env)
    assert selected
    for name, entry in structures.items():
        space = parse_structure_space(entry, name, set(env))
        assert space.enumerate(env)[0], f"{name}: no feasible config at {shape} on {gpu}"
        if name in selected:
            assert any(not space.violations(dict(seed), env) for seed in space.seeds), (
                f"{name}: no seed is feasible at {shape} on {gpu}")
