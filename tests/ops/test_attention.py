from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from eggsearch.errors import UsageError
from eggsearch.ops import get_op
from eggsearch.ops.attention import attention_float64, launch_flash
from eggsearch.verify import compare, run_and_check

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "attention.yaml"
OP = get_op("attention")

# (B, H, S, D): S prime (a partial block at every size), S = 1 (one key, one query), S = 130
# (a partial last block, and causal rows that span many blocks), S = 64 (every block whole: the
# unmasked load and store paths). D 64 and 128, B > 1 for the batch stride.
SHAPES = [(1, 2, 37, 64), (2, 1, 1, 128), (1, 1, 130, 128), (1, 2, 64, 64)]
DTYPES = ["fp16", "bf16"]

# Small blocks keep the interpreter fast. flash also takes key blocks longer than query blocks
# (its diagonal block then reaches past the query block); the split structures need
# BLOCK_N <= BLOCK_M.
CONFIGS = {
    "flash": [
        {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 2, "num_stages": 2, "HEAVY_FIRST": True},
        {"BLOCK_M": 32, "BLOCK_N": 16, "num_warps": 4, "num_stages": 3, "HEAVY_FIRST": False},
    ],
    "flash_split": [
        {"BLOCK_M": 32, "BLOCK_N": 16, "num_warps": 2, "num_stages": 2, "HEAVY_FIRST": True},
        {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 3, "HEAVY_FIRST": False},
    ],
    "flash_tma": [
        {"BLOCK_M": 32, "BLOCK_N": 16, "num_warps": 2, "num_stages": 2, "HEAVY_FIRST": True},
        {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 3, "HEAVY_FIRST": False},
    ],
}
CASES = [(s, i) for s in CONFIGS for i in range(len(CONFIGS[s]))]


def assert_attention_correct(structure: str, shape: tuple[int, ...], dtype: str, causal: bool,
                             config: dict, seeds=(0, 1), device: str = "cpu") -> None:
    """tests/ops/structure_check.py's check, with the causal option set on the problem."""
    problem = OP.problem(shape, dtype, options={"causal": causal})
    for seed in seeds:
        check = run_and_check(OP, problem, OP.structures[structure], config, seed, device)
        assert check.ok, (f"attention.{structure} {shape} {dtype} causal={causal} {config} "
                          f"seed {seed}: {check.message}")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("structure, index", CASES, ids=[f"{s}-{i}" for s, i in CASES])
def test_structure(structure, index, causal, dtype, shape):
    assert_attention_correct(structure, shape, dtype, causal, CONFIGS[structure][index])


def test_causal_flag_is_checked():
    """The flag travels with the inputs: a kernel that ignores it is caught either way."""
    config = CONFIGS["flash"][1]

    def always(flag):
        def launch(q, k, v, is_causal, *, out, **cfg):
            launch_flash(q, k, v, torch.tensor(flag), out=out, **cfg)
        return launch

    for causal in (True, False):
        problem = OP.problem((1, 2, 37, 64), "fp16", options={"causal": causal})
        assert bool(OP.make_inputs(problem, 0, "cpu")[3]) is causal
        assert run_and_check(OP, problem, always(causal), config, 0, "cpu").ok
        check = run_and_check(OP, problem, always(not causal), config, 0, "cpu")
        assert not check.ok, causal


@pytest.mark.parametrize("causal", [True, False])
def test_truth_in_chunks_is_sdpa_in_float64(causal):
    """Chunks of 1 to 3 rows over 2 heads at a time: the pieces join up to the whole."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 29, 64, generator=g).half() for _ in range(3))
    whole = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                                             is_causal=causal)
    for chunk in (29, 2 * 29, 3 * 29, 10**6):
        got = attention_float64(q, k, v, causal, chunk_elems=chunk)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, dtype, message", [
    ((1, 2, 67, 96), "fp16", "head dim D=96 is not supported"),
    ((1, 2, 67, 256), "bf16", "head dim D=256 is not supported"),
    ((1, 2, 67, 64), "fp32", "dtype 'fp32' is not supported"),
])
def test_bad_problems_are_rejected(shape, dtype, message):
    with pytest.raises(UsageError, match=message) as err:
        OP.problem(shape, dtype)
    assert "\n" not in str(err.value)


def test_cost_model():
    causal = OP.problem((8, 32, 4096, 128), "fp16")
    full = OP.problem((8, 32, 4096, 128), "fp16", options={"causal": "0"})
    assert full.option("causal") is False and causal.option("causal") is True
    assert OP.flops(full) == 4 * 8 * 32 * 4096**2 * 128 == 2 * OP.flops(causal)
    assert OP.min_bytes(full) == 4 * 8 * 32 * 4096 * 128 * 2
    assert full.key.endswith("-causal=0")


@pytest.mark.parametrize("structure", ["flash", "flash_split"])
def test_strided_operands(structure):
    """Pointer structures take any strides: q, k, v as [B, S, H, D] buffers seen as
    [B, H, S, D] (how a model's projections usually arrive); out a slice of a buffer longer in S
    and D, whose rows past S and columns past D must stay untouched."""
    problem = OP.problem((2, 3, 37, 64), "fp16")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 37, 3, 64, generator=g).half().transpose(1, 2) for _ in range(3))
    wide = torch.full((2, 3, 48, 80), float("nan"), dtype=torch.float16)
    out = wide[:, :, :37, :64]
    flag = torch.tensor(True)
    OP.structures[structure](q, k, v, flag, out=out, **CONFIGS[structure][0])
    check = compare(out, OP.truth(q, k, v, flag), OP.tolerance(problem))
    assert check.ok, check.message
    assert bool(wide[:, :, 37:].isnan().all()), "wrote rows past S"
    assert bool(wide[..., 64:].isnan().all()), "wrote columns past D"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # head 1 itself is inf/NaN, as in SDPA
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("structure", list(CONFIGS))
def test_heads_stay_apart(structure, causal):
    """A key block reaching past the end of head 0 takes nothing from head 1 (flash_tma reads
    those rows): an inf in head 1's first key and value leaves head 0 exact."""
    problem = OP.problem((1, 2, 37, 64), "fp16", options={"causal": causal})
    q, k, v, flag = OP.make_inputs(problem, 0, "cpu")
    k[0, 1, 0] = v[0, 1, 0] = float("inf")
    out = OP.empty_output(problem, "cpu")
    OP.structures[structure](q, k, v, flag, out=out, **CONFIGS[structure][0])
    head0 = OP.truth(q[:, :1], k[:, :1], v[:, :1], flag)
    check = compare(out[:, :1], head0, OP.tolerance(problem))
    assert check.ok, check.message


def test_tma_needs_contiguous_operands():
    q = torch.randn(1, 37, 2, 64).half().transpose(1, 2)
    with pytest.raises(ValueError, match="contiguous"):
        OP.structures["flash_tma"](q, q, q, torch.tensor(True), out=torch.empty_like(q),
                                   **CONFIGS["flash_tma"][0])


def _space() -> dict:
    with SPACE.open() as f:
        return yaml.safe_load(f)


@pytest.mark.gpu
@pytest.mark.parametrize("structure", list(CONFIGS))
def test_seeds_on_gpu(structure):
    """Every seed compiles and is correct on the GPU at an odd S, causal and not, D 64 and 128."""
    for seed in _space()["structures"][structure]["seeds"]:
        for shape in [(2, 3, 1000, 128), (1, 4, 777, 64)]:
            for causal in (True, False):
                assert_attention_correct(structure, shape, "fp16", causal, seed, seeds=(0,),
                                         device="cuda")
