from __future__ import annotations

import pytest
import torch

from eggsearch.ops import get_op
from eggsearch.verify import compare
from tests.ops.structure_check import assert_structure_correct

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
