"""Problems: options, several outputs, and the verification of each output."""

from __future__ import annotations

import pytest
import torch

from eggsearch.errors import UsageError
from eggsearch.ops.base import DEFAULT_TOLERANCES, OpSpec
from eggsearch.verify import compare_all, run_and_check


class _TwoOutputs(OpSpec):
    """y = x + r and z = 2 * (x + r): an op with two outputs and one option."""

    name, summary, dims = "two", "test op", ("M", "N")
    default_shape = interpreter_shape = (3, 5)
    options = {"scale": 2.0, "fused": True}
    structures = {}

    def make_inputs(self, problem, seed, device):
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(problem.shape, generator=g) for _ in range(2))

    def output_shape(self, problem):
        return problem.shape

    def outputs(self, problem):
        return [(problem.shape, problem.dtype)] * 2

    def reference(self, x, r):
        return x + r, 2 * (x + r)

    def flops(self, problem):
        return 0.0

    def min_bytes(self, problem):
        return 0.0


def test_options_parse_and_join_the_key():
    op = _TwoOutputs()
    p = op.problem(None, "fp32", options={"fused": "0", "scale": "0.5"})
    assert p.option("fused") is False and p.option("scale") == 0.5
    assert p.key == "two-3x5-fp32-fused=0-scale=0.5"
    assert op.variables(p)["fused"] is False
    assert op.problem(None, "fp32").options == (("fused", True), ("scale", 2.0))
    with pytest.raises(UsageError, match="unknown option"):
        op.problem(None, "fp32", options={"causal": "1"})
    with pytest.raises(UsageError, match="expected bool"):
        op.problem(None, "fp32", options={"fused": "maybe"})


def test_every_output_is_poisoned_and_checked():
    op = _TwoOutputs()
    p = op.problem(None, "fp32")

    def good(x, r, *, out):
        out[0].copy_(x + r)
        out[1].copy_(2 * (x + r))

    def forgets_second(x, r, *, out):
        out[0].copy_(x + r)

    assert run_and_check(op, p, good, {}, 0, "cpu").ok
    check = run_and_check(op, p, forgets_second, {}, 0, "cpu")
    assert not check.ok and check.message.startswith("output 1:") and "NaN" in check.message


def test_compare_all_needs_every_output():
    t = torch.ones(3)
    assert not compare_all((t,), (t.double(), t.double()), DEFAULT_TOLERANCES["fp32"]).ok


def test_named_shapes():
    from eggsearch.ops import get_op

    op = get_op("matmul")
    assert op.problem("llama7b-up", "fp16").shape == (4096, 11008, 4096)
    with pytest.raises(UsageError, match="named shape"):
        op.problem("llama7b-upp", "fp16")
