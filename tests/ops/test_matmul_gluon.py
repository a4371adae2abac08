"""wgmma_ws, the Gluon matmul for sm_90: Gluon has no CPU interpreter, so on the CPU every seed
is compiled for sm_90 (and assembled by ptxas: no register spills, shared memory within the
space's constraint, one wgmma group left in flight, setmaxnreg for the specialized warps), the
structure is kept out of interpreter studies and fp32, and the launcher refuses to run there;
on a GPU host every seed is checked against the reference at odd shapes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.rules import load_rules
from eggsearch.verify import run_and_check

from .test_attention_gluon import _ptxas_report, compile_in_child

OP = get_op("matmul")
ROOT = Path(__file__).resolve().parents[2]
SEEDS = yaml.safe_load((ROOT / "search_spaces" / "matmul.yaml").read_text())[
    "structures"]["wgmma_ws"]["seeds"]
SMEM = load_hardware()["H200"].smem_per_block

# The tests run under TRITON_INTERPRET=1, where @gluon.jit makes interpreter functions that
# Triton's compiler refuses; so the kernels are compiled in one child process without it.
COMPILE_SCRIPT = """
import json, sys, torch
from eggsearch.ops.matmul_gluon import compile_for_sm90
out = []
for config, dtype in json.loads(sys.argv[1]):
    k = compile_for_sm90(config, getattr(torch, dtype))
    out.append({"shared": k.metadata.shared, "ptx": k.asm["ptx"]})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled() -> list[dict]:
    """Every seed in fp16, then the first in bf16."""
    return compile_in_child(COMPILE_SCRIPT, [(seed, "float16") for seed in SEEDS]
                            + [(SEEDS[0], "bfloat16")])


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed_compiles_for_sm90(index, compiled, tmp_path):
    seed = SEEDS[index]
    kernel = compiled[index]
    c_cols = seed["BLOCK_N"] // 2 if seed["SPLIT_N"] else seed["BLOCK_N"]
    c_rows = 64 if seed["SHARED_C"] else 128
    bound = (seed["STAGES"] * (128 + seed["BLOCK_N"]) * seed["BLOCK_K"] * 2
             + c_rows * c_cols * 2 + 1024)
    assert kernel["shared"] <= bound <= SMEM
    ptx = kernel["ptx"]
    # One K step's products stay in flight while the previous step's stage is released.
    in_flight = 2 if seed["SPLIT_N"] else 1
    assert f"wgmma.wait_group.sync.aligned {in_flight};" in ptx
    assert "setmaxnreg" in ptx
    assert "cp.async.bulk.tensor.2d.global.shared::cta" in ptx  # the TMA store epilogue
    report = _ptxas_report(ptx, tmp_path)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", report)]
    assert spills and max(spills) == 0, report


@pytest.mark.parametrize("sms", [132, 114, 8])
def test_balanced_grid_keeps_the_rounds_and_evens_the_load(sms):
    from eggsearch.ops.matmul_gluon import persistent_grid

    for tiles in [1, 7, 8, 9, 100, 131, 132, 133, 263, 264, 512, 1000]:
        plain, even = persistent_grid(tiles, sms, False), persistent_grid(tiles, sms, True)
        assert plain == min(tiles, sms) and 1 <= even <= plain
        rounds = -(-tiles // plain)
        assert -(-tiles // even) == rounds, (tiles, sms)  # the same makespan in tiles
        # Programs take tiles p, p + grid, ...: loads differ by at most one tile.
        loads = [len(range(p, tiles, even)) for p in range(even)]
        assert max(loads) == rounds and max(loads) - min(loads) <= 1, (tiles, sms, loads)
        assert even == 1 or -(-tiles // (even - 1)) > rounds  # no fewer programs would do
    assert persistent_grid(512, 132, True) == 128


def test_bf16_compiles(compiled):
    assert ".bf16.bf16" in compiled[len(SEEDS)]["ptx"]


def test_selected_only_on_hopper_gpus_and_16_bit():
    rules, specs = load_rules(), load_hardware()
    structures = list(OP.structures)

    def selected(gpu, dtype):
        problem = OP.problem((4096, 4096, 4096), dtype, interpreter=gpu == "interpreter")
        env = {**OP.variables(problem), **specs[gpu].variables()}
        return rules.select("matmul", structures, env)

    assert "wgmma_ws" in selected("H200", "fp16") and "wgmma_ws" in selected("H100-SXM", "bf16")
    for gpu, dtype in [("H200", "fp32"), ("A100-80GB", "fp16"), ("interpreter", "fp16")]:
        assert "wgmma_ws" not in selected(gpu, dtype), (gpu, dtype)


def test_launcher_refuses_the_interpreter():
    problem = OP.problem((64, 64, 64), "fp16")
    a, b = OP.make_inputs(problem, 0, "cpu")
    with pytest.raises(ValueError, match="interpreter cannot run it"):
        OP.structures["wgmma_ws"](a, b, out=torch.empty(64, 64, dtype=torch.float16),
                                  **SEEDS[0])


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seeds_on_gpu(index):
    """Every seed at shapes with edge tiles in M, N and K (rows 16-byte aligned), fewer tiles
    than SMs and more (persistent programs take several), fp16 and bf16."""
    for shape in [(999, 1208, 1040), (64, 8, 24), (1000, 4104, 520), (4096, 4096, 4096)]:
        for dtype in ("fp16", "bf16"):
            problem = OP.problem(shape, dtype)
            check = run_and_check(OP, problem, OP.structures["wgmma_ws"], SEEDS[index], 0,
                                  "cuda")
            assert check.ok, f"wgmma_ws {shape} {dtype} {SEEDS[index]}: {check.message}"
