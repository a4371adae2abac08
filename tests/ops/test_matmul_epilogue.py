from __future__ import annotations

import json

import pytest
import torch

from eggsearch.errors import UsageError
from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.ops.matmul_epilogue import ITEMS, Epilogue
from eggsearch.plan import SearchPlan
from eggsearch.proposers import LibraryProposer
from eggsearch.rules import load_rules
from eggsearch.verify import compare, run_and_check
from tests.test_cli import cli

# (M, N, K): a single row; primes. Every shape has edge tiles in M and N for the blocks below
# and a partial K block for BLOCK_K 32.
SHAPES = [(1, 17, 129), (37, 53, 71)]
# Tensor descriptors need 16-byte aligned rows (N and K multiples of 8 in fp16); M stays odd
# and N, K are no multiple of the blocks, so every edge is clipped.
DESCRIPTOR_SHAPES = [(1, 24, 136), (37, 56, 72)]
# One chain per dtype, together every item: the default, a chain ending in a residual, and one
# where the order matters (silu of the residual sum, then the bias, then the scale).
CHAINS = {"fp16": "bias,gelu", "bf16": "relu,scale,residual", "fp32": "residual,silu,bias,scale"}

TILE_CONFIGS = [
    {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1, "num_warps": 2,
     "num_stages": 2, "INPUT_PRECISION": "ieee"},
    {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 32, "GROUP_M": 4, "num_warps": 4,
     "num_stages": 3, "INPUT_PRECISION": "tf32x3"},
]
DESCRIPTOR_CONFIGS = [
    {**TILE_CONFIGS[0], "PERSISTENT": False, "FLATTEN": False, "EPILOGUE_SUBTILE": False},
    # Subtiled: each half gets its own columns of the bias and the residual.
    {**TILE_CONFIGS[1], "BLOCK_N": 32, "PERSISTENT": True, "FLATTEN": True,
     "EPILOGUE_SUBTILE": True},
]


def check(structure: str, shape, dtype: str, config: dict, epilogue: str, alpha: float = 0.5,
          seeds=(0, 1)) -> None:
    """tests/ops/structure_check.py's helper, with the op's options."""
    op = get_op("matmul_epilogue")
    problem = op.problem(shape, dtype, options={"epilogue": epilogue, "alpha": str(alpha)})
    for seed in seeds:
        result = run_and_check(op, problem, op.structures[structure], config, seed, "cpu")
        assert result.ok, f"{structure} {shape} {dtype} {epilogue} {config}: {result.message}"


@pytest.mark.parametrize("structure", ["tiled", "persistent"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", list(CHAINS))
@pytest.mark.parametrize("config", TILE_CONFIGS, ids=["16x16x16", "32x16x32"])
def test_pointer_structures(structure, shape, dtype, config):
    check(structure, shape, dtype, config, CHAINS[dtype])


@pytest.mark.parametrize("shape", DESCRIPTOR_SHAPES)
@pytest.mark.parametrize("dtype", list(CHAINS))
@pytest.mark.parametrize("config", DESCRIPTOR_CONFIGS, ids=["tiles", "flat-subtile"])
def test_descriptor(shape, dtype, config):
    check("descriptor", shape, dtype, config, CHAINS[dtype], seeds=(0,))


# fp32's tight tolerance tells each item's form apart, e.g. GELU's erf form from its tanh
# approximation (they differ by up to ~5e-4).
@pytest.mark.parametrize("item", ITEMS)
def test_each_item_alone(item):
    check("tiled", (37, 53, 71), "fp32", TILE_CONFIGS[1], item, alpha=-1.75, seeds=(2,))


def test_every_item_in_one_chain_both_orders():
    for chain in ("bias,relu,gelu,silu,scale,residual", "residual,scale,silu,gelu,relu,bias"):
        check("descriptor", (37, 56, 72), "fp32", DESCRIPTOR_CONFIGS[1], chain, seeds=(3,))


def test_strided_operands():
    """A column-major, B a transposed view, the residual a slice of a wider buffer, C a slice
    whose columns beyond N must stay untouched."""
    op = get_op("matmul_epilogue")
    problem = op.problem((37, 53, 71), "fp16", options={"epilogue": "bias,residual"})
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(71, 37, generator=g) / 3).half().t()
    b = (torch.randn(53, 71, generator=g) / 3).half().t()
    bias = torch.randn(53, generator=g).half()
    residual = torch.randn(37, 64, generator=g).half()[:, 5:58]
    chain = Epilogue.parse("bias,residual", 0.5).to_tensor()
    wide = torch.full((37, 60), float("nan"), dtype=torch.float16)
    out = wide[:, :53]
    op.structures["tiled"](a, b, bias, residual, chain, out=out, **TILE_CONFIGS[1])
    result = compare(out, op.truth(a, b, bias, residual, chain), op.tolerance(problem))
    assert result.ok, result.message
    assert bool(wide[:, 53:].isnan().all()), "wrote outside out"


def test_inputs_follow_the_chain():
    op = get_op("matmul_epilogue")
    shapes = lambda chain: [tuple(t.shape) for t in op.make_inputs(  # noqa: E731
        op.problem((5, 8, 16), "fp16", options={"epilogue": chain}), 0, "cpu")]
    assert shapes("gelu") == [(5, 16), (16, 8), (2,)]
    assert shapes("residual,bias") == [(5, 16), (16, 8), (8,), (5, 8), (3,)]
    assert get_op("matmul_epilogue").min_bytes(
        op.problem((5, 8, 16), "fp16", options={"epilogue": "bias,residual"})) == \
        2 * (5 * 16 + 16 * 8 + 5 * 8 + 8 + 5 * 8)


@pytest.mark.parametrize("options, message", [
    ({"epilogue": "bias,tanh"}, "item 'tanh' is unknown"),
    ({"epilogue": "bias, gelu"}, "item ' gelu' is unknown"),
    ({"epilogue": "gelu,bias,gelu"}, "'gelu' appears more than once"),
    ({"epilogue": ""}, "epilogue is empty"),
    ({"alpha": "inf"}, "must be a finite number"),
    ({"alpha": "half"}, "expected float"),
    ({"epilog": "bias"}, "unknown option"),
])
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        get_op("matmul_epilogue").problem(None, "fp16", options=options)


def test_cli_end_to_end_with_options(tmp_path):
    """A study with a chain and an alpha runs through the CLI and the isolated worker, records
    the options, and its kernels pass verification there."""
    out = tmp_path / "run"
    r = cli("run", "--op", "matmul_epilogue", "--option", "epilogue=scale,residual", "--option",
            "alpha=2", "--shape", "37x53x40", "--structure", "tiled", "--trials", "2",
            "--backend", "interpreter", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["options"] == {"alpha": 2.0, "epilogue": "scale,residual"}
    assert summary["best"] is not None
    records = (out / "trials.jsonl").read_text().splitlines()
    statuses = [json.loads(ln)["status"] for ln in records]
    assert "incorrect" not in statuses and "ok" in statuses


def feasible_seeds(op, problem, structure: str) -> list[dict]:
    """The structure's seeds that the search space admits for ``problem`` on an H100/H200."""
    env = {**op.variables(problem), **load_hardware()["H100-SXM"].variables()}
    rules = load_rules()
    structures = LibraryProposer(rules, only=[structure]).propose(op, problem, env)
    return [config for _, config in SearchPlan(structures, rules, env).seeds()]


@pytest.mark.gpu
@pytest.mark.parametrize("structure", ["tiled", "persistent", "descriptor"])
def test_seeds_on_gpu(structure):
    """Every seed the space admits compiles and is correct on the GPU at an odd shape, in each
    dtype, with the default chain and with one that reads a residual."""
    op = get_op("matmul_epilogue")
    shape = (999, 1208, 1040) if structure == "descriptor" else (999, 1201, 1037)
    for dtype in ("fp16", "bf16", "fp32"):
        for chain in ("bias,gelu", "silu,scale,residual"):
            problem = op.problem(shape, dtype, options={"epilogue": chain})
            for seed in feasible_seeds(op, problem, structure):
                result = run_and_check(op, problem, op.structures[structure], seed, 0, "cuda")
                assert result.ok, f"{structure} {dtype} {chain} {seed}: {result.message}"
