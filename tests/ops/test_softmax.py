from __future__ import annotations

import pytest
import torch

from eggsearch.ops import get_op
from eggsearch.ops.base import torch_dtype
from eggsearch.verify import compare
from tests.ops.structure_check import assert_structure_correct

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
