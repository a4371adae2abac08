from __future__ import annotations

import pytest
import torch

from eggsearch.errors import UsageError
from eggsearch.ops import get_op
from eggsearch.verify import run_and_check
from tests.ops.structure_check import assert_structure_correct
from tests.ops.test_matmul_epilogue import feasible_seeds

# (M, V): one row with a vocabulary shorter than a block; primes, no multiple of any block.
SHAPES = [(1, 7), (37, 1031), (3, 5003)]
DTYPES = ["fp16", "bf16", "fp32"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_V": 256, "num_warps": 2},
                                    {"BLOCK_V": 1024, "num_warps": 4}])
def test_online(shape, dtype, config):
    assert_structure_correct("cross_entropy", "online", shape, dtype, config)


# SPLIT_V 2 on V = 1031 (5 blocks of 256): chunks of 3 blocks, the last short. SPLIT_V 8 on
# V = 5003 (20 blocks): chunks of 3 blocks, so only 7 chunks are launched; on V = 7, one chunk.
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [{"BLOCK_V": 256, "SPLIT_V": 2, "num_warps": 2},
                                    {"BLOCK_V": 256, "SPLIT_V": 8, "num_warps": 4}])
def test_split_v(shape, dtype, config):
    assert_structure_correct("cross_entropy", "split_v", shape, dtype, config)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_is_fp32_and_inputs_need_a_stable_logsumexp(dtype):
    op = get_op("cross_entropy")
    problem = op.problem((37, 1031), dtype)
    logits, targets = op.make_inputs(problem, 0, "cpu")
    assert op.empty_output(problem, "cpu").dtype == torch.float32
    assert op.reference(logits, targets).dtype == torch.float32
    assert targets.dtype == torch.int64 and 0 <= int(targets.min()) <= int(targets.max()) < 1031
    # exp() of these logits overflows fp32: a kernel without the running max cannot pass.
    assert float(logits.float().max()) > 89.0


def test_no_options():
    with pytest.raises(UsageError, match="unknown option"):
        get_op("cross_entropy").problem(None, "fp32", options={"reduction": "mean"})


@pytest.mark.gpu
@pytest.mark.parametrize("structure", ["online", "split_v"])
def test_seeds_on_gpu(structure):
    """Every seed the space admits compiles and is correct on the GPU, few and many rows."""
    op = get_op("cross_entropy")
    for shape in ((7, 128257), (1001, 32003)):
        for dtype in DTYPES:
            problem = op.problem(shape, dtype)
            for seed in feasible_seeds(op, problem, structure):
                result = run_and_check(op, problem, op.structures[structure], seed, 0, "cuda")
                assert result.ok, f"{structure} {shape} {dtype} {seed}: {result.message}"
