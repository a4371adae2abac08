from __future__ import annotations

import pytest

from tests.ops.structure_check import assert_structure_correct

# Odd shapes: primes and non-multiples of every block size; one row shorter than a warp.
SHAPES = [(1, 7), (13, 257), (5, 1031)]
DTYPES = ["fp16", "bf16", "fp32"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"num_warps": 4, "EVICT": ""},
                                    {"num_warps": 1, "EVICT": "evict_first"}])
def test_one_pass(shape, dtype, config):
    assert_structure_correct("rmsnorm", "one_pass", shape, dtype, config)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_n", [256, 1024])
def test_looped(shape, dtype, block_n):
    assert_structure_correct("rmsnorm", "looped", shape, dtype,
                             {"BLOCK_N": block_n, "num_warps": 4})
