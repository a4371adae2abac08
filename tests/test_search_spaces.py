"""Every shipped search space loads through the real loader and leaves work to do."""

from __future__ import annotations

import pytest

from eggsearch.hardware import load_hardware
from eggsearch.ops import OPS, get_op
from eggsearch.plan import SearchPlan
from eggsearch.proposers import LibraryProposer
from eggsearch.rules import load_rules


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
        assert set(plan.plans) == set(op.structures), plan.skipped
        # The expert seeds of the structures the rules select are worth something here.
        selected = LibraryProposer(rules).propose(op, problem, env)
        assert selected
        if gpu != "interpreter":
            seeds = SearchPlan(selected, rules, env).seeds()
            assert {name for name, _ in seeds} == {s.name for s in selected}, dtype
