from __future__ import annotations

import pytest

from eggsearch.errors import UsageError
from eggsearch.ops import get_op
from eggsearch.verify import run_and_check
from tests.ops.structure_check import assert_structure_correct
from tests.ops.test_matmul_epilogue import feasible_seeds

# (M, N, K): a single row; primes. Edge tiles in M and N, and a partial K block for BLOCK_K 32.
SHAPES = [(1, 17, 129), (37, 53, 71)]
# Tensor descriptors need 16-byte aligned rows (N and K multiples of 8 in fp16).
DESCRIPTOR_SHAPES = [(1, 24, 136), (37, 56, 72)]
DTYPES = ["fp16", "bf16", "fp32"]

TILE_CONFIGS = [
    {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1, "num_warps": 2,
     "num_stages": 2, "INPUT_PRECISION": "ieee"},
    {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 32, "GROUP_M": 4, "num_warps": 4,
     "num_stages": 3, "INPUT_PRECISION": "tf32x3"},
]
DESCRIPTOR_CONFIGS = [
    {**TILE_CONFIGS[0], "PERSISTENT": False, "FLATTEN": False},
    {**TILE_CONFIGS[1], "BLOCK_N": 32, "PERSISTENT": True, "FLATTEN": True},
]
# On the CPU the persistent grid has 4 programs, fewer than the tiles of (37, 53).
SPLIT_CONFIGS = [{**TILE_CONFIGS[0], "PERSISTENT": False},
                 {**TILE_CONFIGS[1], "PERSISTENT": True}]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", TILE_CONFIGS, ids=["16x16x16", "32x16x32"])
def test_fused(shape, dtype, config):
    assert_structure_correct("swiglu", "fused", shape, dtype, config)


@pytest.mark.parametrize("shape", DESCRIPTOR_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", DESCRIPTOR_CONFIGS, ids=["tiles", "persistent-flat"])
def test_descriptor(shape, dtype, config):
    assert_structure_correct("swiglu", "descriptor", shape, dtype, config, seeds=(0,))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", SPLIT_CONFIGS, ids=["tiles", "persistent"])
def test_split(shape, dtype, config):
    assert_structure_correct("swiglu", "split", shape, dtype, config)


def test_no_options():
    with pytest.raises(UsageError, match="unknown option"):
        get_op("swiglu").problem(None, "fp16", options={"epilogue": "silu"})


@pytest.mark.gpu
@pytest.mark.parametrize("structure", ["fused", "descriptor", "split"])
def test_seeds_on_gpu(structure):
    """Every seed the space admits compiles and is correct on the GPU at an odd shape."""
    op = get_op("swiglu")
    shape = (999, 1208, 1040) if structure == "descriptor" else (999, 1201, 1037)
    for dtype in DTYPES:
        problem = op.problem(shape, dtype)
        for seed in feasible_seeds(op, problem, structure):
            result = run_and_check(op, problem, op.structures[structure], seed, 0, "cuda")
            assert result.ok, f"{structure} {dtype} {seed}: {result.message}"
