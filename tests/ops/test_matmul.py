from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from eggsearch.ops import get_op
from eggsearch.ops.matmul import streamk_split
from eggsearch.verify import compare, run_and_check
from tests.ops.structure_check import assert_structure_correct

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "matmul.yaml"

# (M, N, K): a single row; primes; K a multiple of 16 but not of 32. Every shape has an edge tile
# in M or N for the blocks below, and K leaves a partial K block for BLOCK_K 32.
SHAPES = [(1, 17, 129), (37, 53, 71), (64, 48, 80)]
DTYPES = ["fp16", "bf16", "fp32"]

# Small blocks keep the interpreter fast. For fp16/bf16 the kernel ignores INPUT_PRECISION, so
# "tf32x3" there checks that the 16-bit path never passes it on; for fp32 both stay exact.
TILE_CONFIGS = [
    {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1, "num_warps": 2,
     "num_stages": 2, "INPUT_PRECISION": "ieee"},
    {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 32, "GROUP_M": 4, "num_warps": 4,
     "num_stages": 3, "INPUT_PRECISION": "tf32x3"},
]
# SPLIT_K 2 leaves a short last split on every shape (5 or 9 K blocks of 16); SPLIT_K 4 on
# K = 129 (9 blocks, 3 per split) needs only 3 splits, so the launcher must drop the empty one.
SPLITK_CONFIGS = [
    {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": 2, "GROUP_M": 1, "num_warps": 2,
     "num_stages": 2, "INPUT_PRECISION": "ieee"},
    {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": 4, "GROUP_M": 4, "num_warps": 4,
     "num_stages": 3, "INPUT_PRECISION": "tf32x3"},
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", TILE_CONFIGS, ids=["16x16x16", "32x16x32"])
def test_tiled(shape, dtype, config):
    assert_structure_correct("matmul", "tiled", shape, dtype, config)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", SPLITK_CONFIGS, ids=["split2", "split4"])
def test_splitk(shape, dtype, config):
    assert_structure_correct("matmul", "splitk", shape, dtype, config)


# On the CPU the persistent grid has 4 programs: (37, 53) and (64, 48) have 6 to 12 tiles, so
# each program walks several; (1, 17) has 1 or 2, fewer than the programs.
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", TILE_CONFIGS, ids=["16x16x16", "32x16x32"])
def test_persistent(shape, dtype, config):
    assert_structure_correct("matmul", "persistent", shape, dtype, config)


# Tensor descriptors need 16-byte aligned rows (N and K multiples of 8 in fp16, of 4 in fp32),
# but nothing else: M is odd and N, K are no multiple of the blocks, so every edge is clipped.
DESCRIPTOR_SHAPES = [(1, 24, 136), (37, 56, 72), (67, 40, 88)]
DESCRIPTOR_CONFIGS = [
    {**TILE_CONFIGS[0], "PERSISTENT": False, "FLATTEN": False, "EPILOGUE_SUBTILE": False},
    {**TILE_CONFIGS[1], "PERSISTENT": True, "FLATTEN": False, "EPILOGUE_SUBTILE": False},
    {**TILE_CONFIGS[1], "BLOCK_N": 32, "PERSISTENT": True, "FLATTEN": True,
     "EPILOGUE_SUBTILE": True},
]


@pytest.mark.parametrize("shape", DESCRIPTOR_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", DESCRIPTOR_CONFIGS,
                         ids=["tiles", "persistent", "flat-subtile"])
def test_descriptor(shape, dtype, config):
    assert_structure_correct("matmul", "descriptor", shape, dtype, config)


# On the CPU the streamk grid has 4 programs. (67, 40, 88) at 16x16 has 15 tiles: the last 3
# are shared out by K blocks (6 per tile, cut into 4 pieces: owners add one or two partials);
# (37, 56, 72) at 32x16 has 8 tiles, whole waves, so none; (1, 24, 136) has 1 or 2 tiles,
# fewer than the programs, so all of them are cut (split-K through the same workspace).
STREAMK_CONFIGS = [
    {**TILE_CONFIGS[0], "SK_PIECES": 2, "FLATTEN": False, "EPILOGUE_SUBTILE": False},
    {**TILE_CONFIGS[0], "SK_PIECES": 4, "FLATTEN": True, "EPILOGUE_SUBTILE": True},
    {**TILE_CONFIGS[1], "BLOCK_N": 32, "SK_PIECES": 4, "FLATTEN": True,
     "EPILOGUE_SUBTILE": False},
]


@pytest.mark.parametrize("shape", DESCRIPTOR_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", STREAMK_CONFIGS, ids=["pieces2", "pieces4-subtile", "32x32"])
def test_streamk(shape, dtype, config):
    assert_structure_correct("matmul", "streamk", shape, dtype, config)


def test_streamk_split():
    """The last partial wave is shared out; whole waves and single K blocks are left alone."""
    # 4096^3 at 128x256x64 on 132 SMs: 512 tiles, 116 in the last wave, 7424 K blocks for 132.
    assert streamk_split(512, 64, 132, 2) == (116, 132)
    assert streamk_split(528, 64, 132, 2) == (0, 0)       # 4 whole waves
    assert streamk_split(10, 64, 132, 4) == (10, 40)      # fewer tiles than SMs: split-K
    assert streamk_split(10, 64, 132, 2) == (10, 20)
    assert streamk_split(140, 1, 132, 4) == (0, 0)        # one K block: pieces = tiles
    assert streamk_split(133, 3, 132, 4) == (1, 3)        # at most one piece per K block
    for tiles, k_tiles, programs, pieces in [(512, 64, 132, 2), (15, 6, 4, 4), (2, 9, 4, 2),
                                             (10, 64, 132, 4), (133, 3, 132, 4)]:
        sk_tiles, sk_programs = streamk_split(tiles, k_tiles, programs, pieces)
        total = sk_tiles * k_tiles
        for pid in range(sk_programs):  # the kernel's ranges of K blocks
            lo, hi = pid * total // sk_programs, (pid + 1) * total // sk_programs
            assert 1 <= hi - lo <= k_tiles
            assert (hi - 1) // k_tiles - lo // k_tiles <= 1, "a range touches at most 2 tiles"


def test_streamk_leaves_flags_down_and_allocates_once():
    """After a launch every flag is down again (so a replay, e.g. in a CUDA graph, finds them
    as the first launch did), and a second launch reuses the same workspace."""
    import eggsearch.ops.matmul as matmul

    op = get_op("matmul")
    problem = op.problem((67, 40, 88), "fp16")
    config = STREAMK_CONFIGS[1]
    matmul._STREAMK_WORKSPACE.clear()
    for seed in (0, 1):
        a, b = op.make_inputs(problem, seed, "cpu")
        out = torch.full((67, 40), float("nan"), dtype=torch.float16)
        op.structures["streamk"](a, b, out=out, **config)
        check = compare(out, op.truth(a, b), op.tolerance(problem))
        assert check.ok, check.message
        assert len(matmul._STREAMK_WORKSPACE) == 1
        (ws, flags), = matmul._STREAMK_WORKSPACE.values()
        assert int(flags.abs().sum()) == 0


@pytest.mark.parametrize("structure", ["tiled", "splitk", "persistent", "descriptor"])
def test_tf32_when_allowed(structure):
    config = {**TILE_CONFIGS[0], "INPUT_PRECISION": "tf32"}
    shape = (37, 53, 71)
    if structure == "splitk":
        config["SPLIT_K"] = 2
    if structure == "descriptor":
        config.update(PERSISTENT=True, FLATTEN=False, EPILOGUE_SUBTILE=False)
        shape = (37, 56, 72)
    assert_structure_correct("matmul", structure, shape, "fp32", config, allow_tf32=True)


# Tensor descriptors need contiguous rows, so `descriptor` is left out here (its search space
# prunes unaligned shapes; the tuner's inputs are contiguous).
@pytest.mark.parametrize("structure", ["tiled", "splitk", "persistent"])
def test_strided_operands(structure):
    """Launchers take any strides: A column-major, B a transposed view, C a slice of a wider
    buffer whose columns beyond N must stay untouched."""
    op = get_op("matmul")
    problem = op.problem((37, 53, 71), "fp16")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(71, 37, generator=g).half().t()
    b = torch.randn(53, 71, generator=g).half().t()
    wide = torch.full((37, 60), float("nan"), dtype=torch.float16)
    out = wide[:, :53]
    config = {**TILE_CONFIGS[1], "INPUT_PRECISION": "ieee"}
    if structure == "splitk":
        config["SPLIT_K"] = 2
    op.structures[structure](a, b, out=out, **config)
    check = compare(out, op.truth(a, b), op.tolerance(problem))
    assert check.ok, check.message
    assert bool(wide[:, 53:].isnan().all()), "wrote outside out"


def _space() -> dict:
    with SPACE.open() as f:
        return yaml.safe_load(f)


@pytest.mark.gpu
@pytest.mark.parametrize("structure", ["tiled", "splitk", "persistent", "descriptor",
                                       "streamk"])
def test_seeds_on_gpu(structure):
    """Every seed compiles and is correct on the GPU at an odd shape, in each dtype it fits."""
    op = get_op("matmul")
    for seed in _space()["structures"][structure]["seeds"]:
        dtypes = ["fp32"] if seed["INPUT_PRECISION"] != "ieee" else ["fp16", "bf16"]
        # Descriptors need 16-byte aligned rows: N and K multiples of 8 there.
        aligned = structure in ("descriptor", "streamk")
        shape = (999, 1208, 1040) if aligned else (999, 1201, 1037)
        for dtype in dtypes:
            problem = op.problem(shape, dtype)
            check = run_and_check(op, problem, op.structures[structure], seed, 0, "cuda")
            assert check.ok, f"{structure} {dtype} {seed}: {check.message}"
