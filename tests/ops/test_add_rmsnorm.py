from __future__ import annotations

import pytest
import torch

from eggsearch.errors import UsageError
from eggsearch.ops import get_op
from eggsearch.verify import run_and_check
from tests.ops.structure_check import assert_structure_correct
from tests.ops.test_matmul_epilogue import feasible_seeds

# Odd shapes: primes and non-multiples of every block size; one row shorter than a warp.
SHAPES = [(1, 7), (13, 257), (5, 1031)]
DTYPES = ["fp16", "bf16", "fp32"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"num_warps": 4, "EVICT": ""},
                                    {"num_warps": 1, "EVICT": "evict_first"}])
def test_one_pass(shape, dtype, config):
    assert_structure_correct("add_rmsnorm", "one_pass", shape, dtype, config)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_N": 256, "REREAD_H": True, "num_warps": 4},
                                    {"BLOCK_N": 512, "REREAD_H": False, "num_warps": 2}],
                         ids=["reread", "readd"])
def test_looped(shape, dtype, config):
    assert_structure_correct("add_rmsnorm", "looped", shape, dtype, config)


def test_truth_normalises_the_rounded_sum():
    """y's truth is the RMSNorm of h as stored in the dtype, not of the exact sum."""
    op = get_op("add_rmsnorm")
    x, r, w = op.make_inputs(op.problem((4, 301), "bf16"), 0, "cpu")
    h, y = op.truth(x, r, w)
    assert torch.equal(h, (x + r).double())
    exact = (x.double() + r.double())
    assert not torch.equal(h, exact)
    expected = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double()
    torch.testing.assert_close(y, expected)


def test_no_options():
    with pytest.raises(UsageError, match="unknown option"):
        get_op("add_rmsnorm").problem(None, "fp16", options={"eps": "1e-5"})


@pytest.mark.gpu
@pytest.mark.parametrize("structure", ["one_pass", "looped"])
def test_seeds_on_gpu(structure):
    """Every seed the space admits compiles and is correct on the GPU at an odd shape."""
    op = get_op("add_rmsnorm")
    for dtype in DTYPES:
        problem = op.problem((999, 8191), dtype)
        for seed in feasible_seeds(op, problem, structure):
            result = run_and_check(op, problem, op.structures[structure], seed, 0, "cuda")
            assert result.ok, f"{structure} {dtype} {seed}: {result.message}"
