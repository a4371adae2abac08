"""flash_wgmma, the Gluon attention for sm_90: Gluon has no CPU interpreter, so on the CPU every
seed is compiled for sm_90 (and assembled by ptxas: no register spills, shared memory within the
space's constraint), the structure is kept out of interpreter studies, and the launcher refuses
to run there; on a GPU host every seed is checked against float64 at odd shapes."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.ops.attention_gluon import persistent_programs
from eggsearch.rules import load_rules

from .test_attention import _space, assert_attention_correct

OP = get_op("attention")
ROOT = Path(__file__).resolve().parents[2]
SEEDS = _space()["structures"]["flash_wgmma"]["seeds"]
SMEM = load_hardware()["H200"].smem_per_block


# The tests run under TRITON_INTERPRET=1, where @gluon.jit makes interpreter functions that
# Triton's compiler refuses; so the kernels are compiled in one child process without it.
COMPILE_SCRIPT = """
import json, sys, torch
from eggsearch.ops.attention_gluon import compile_for_sm90
out = []
for config, causal, head_dim, dtype in json.loads(sys.argv[1]):
    k = compile_for_sm90(config, causal, head_dim, getattr(torch, dtype))
    out.append({"shared": k.metadata.shared, "ptx": k.asm["ptx"]})
print(json.dumps(out))
"""
EXTRA = [
    {"BLOCK_M": 64, "BLOCK_N": 64, "STAGES": 2, "HEAVY_FIRST": False},
    {"BLOCK_M": 128, "BLOCK_N": 64, "STAGES": 3, "HEAVY_FIRST": False, "WARP_SPECIALIZE": True,
     "PINGPONG": True},
]


def compile_in_child(script: str, jobs: list) -> list[dict]:
    """Run ``script`` (which compiles ``jobs``, given as JSON in argv[1], and prints a JSON list)
    in a child process without TRITON_INTERPRET; its parsed output."""
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(jobs)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def compiled() -> list[dict]:
    """Every seed causal at D 128 in fp16, then EXTRA non-causal at D 64 in bf16."""
    return compile_in_child(COMPILE_SCRIPT,
                            [(seed, True, 128, "float16") for seed in SEEDS]
                            + [(config, False, 64, "bfloat16") for config in EXTRA])


def _ptxas_report(ptx: str, tmp_path: Path) -> str:
    import triton.backends.nvidia as nvidia

    ptxas = Path(nvidia.__file__).parent / "bin" / "ptxas"
    if not ptxas.exists():
        pytest.skip("this Triton wheel ships no ptxas")
    src = tmp_path / "kernel.ptx"
    src.write_text(ptx)
    done = subprocess.run([str(ptxas), "-arch=sm_90a", "-v", str(src), "-o",
                           str(tmp_path / "kernel.cubin")], capture_output=True, text=True,
                          check=True)
    return done.stderr


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed_compiles_for_sm90(index, compiled, tmp_path):
    seed = SEEDS[index]
    kernel = compiled[index]
    problem = OP.problem((8, 32, 4096, 128), "fp16")
    bound = ((seed["BLOCK_M"] + seed["STAGES"] * 2 * seed["BLOCK_N"]) * 128
             * problem.elem_bytes + 1024)
    assert kernel["shared"] <= bound <= SMEM
    ptx = kernel["ptx"]
    # The overlap this structure exists for: a wait that leaves one wgmma group in flight.
    assert "wgmma.wait_group.sync.aligned 1;" in ptx
    if seed["WARP_SPECIALIZE"]:
        assert "setmaxnreg" in ptx
    report = _ptxas_report(ptx, tmp_path)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", report)]
    assert spills and max(spills) == 0, report


@pytest.mark.parametrize("index", range(len(EXTRA)))
def test_head_dim_64_and_bf16_compile(index, compiled):
    ptx = compiled[len(SEEDS) + index]["ptx"]
    assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in ptx


def test_selected_only_on_hopper_gpus():
    rules = load_rules()
    specs = load_hardware()
    structures = list(OP.structures)
    on_cpu = rules.select("attention", structures, specs["interpreter"].variables())
    on_h200 = rules.select("attention", structures, specs["H200"].variables())
    on_a100 = rules.select("attention", structures, specs["A100-80GB"].variables())
    assert "flash_wgmma" not in on_cpu and "flash_wgmma" not in on_a100
    assert "flash_wgmma" in on_h200


def test_launcher_refuses_the_interpreter():
    problem = OP.problem((1, 2, 37, 64), "fp16")
    q, k, v, flag = OP.make_inputs(problem, 0, "cpu")
    with pytest.raises(ValueError, match="interpreter cannot run it"):
        OP.structures["flash_wgmma"](q, k, v, flag, out=torch.empty_like(q), **SEEDS[0])


def _tiles(p: int, grid: int, num_tiles: int, snake: bool) -> list[int]:
    """The tiles persistent program p takes (the kernel's _persistent_tile, in Python)."""
    out = []
    for t in range(p, num_tiles, grid):
        k = t // grid
        if snake and k % 2 == 1 and (k + 1) * grid <= num_tiles:
            t += grid - 1 - 2 * (t % grid)
        out.append(t)
    return out


def _makespan(num_m: int, heads: int, grid: int, snake: bool = False,
              heavy_first: bool = True) -> float:
    """Busiest program's causal work (key blocks) over the mean of a 132-program grid."""
    cost = [num_m - (t % num_m) if heavy_first else t % num_m + 1
            for t in range(num_m * heads)]
    loads = [sum(cost[t] for t in _tiles(p, grid, len(cost), snake)) for p in range(grid)]
    return max(loads) / (sum(cost) / 132)


def test_persistent_grid_balances_causal_work():
    grid = persistent_programs(8192, 32, 132, causal=True)
    assert grid == 131 and math.gcd(grid, 32) == 1
    assert _makespan(32, 256, grid) < 1.05 < 1.10 < _makespan(32, 256, 132)
    assert persistent_programs(8192, 32, 132, causal=False) == 132
    assert persistent_programs(5, 1, 132, causal=True) == 5
    # SNAKE keeps all 132 SMs and pairs short tiles with long ones: with the light tiles of a
    # head first (HEAVY_FIRST off, the seed), better than either; the last partial round
    # (8 tiles) decides the rest.
    assert persistent_programs(8192, 32, 132, causal=True, snake=True) == 132
    assert (_makespan(32, 256, 132, snake=True, heavy_first=False) < 1.01
            < 1.03 < _makespan(32, 256, 131, heavy_first=False))
    for grid, tiles in [(132, 8192), (131, 8192), (4, 10), (7, 7)]:
        taken = sorted(t for p in range(grid) for t in _tiles(p, grid, tiles, snake=True))
        assert taken == list(range(tiles)), "every tile exactly once"


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seeds_on_gpu(index):
    """Every seed at odd S, causal and not, D 64 and 128; the last shape has more tiles than
    the GPU has SMs, so persistent programs take several, of different lengths."""
    for shape in [(2, 3, 1000, 128), (1, 4, 777, 64), (2, 70, 300, 128)]:
        for causal in (True, False):
            assert_attention_correct("flash_wgmma", shape, "fp16", causal, SEEDS[index],
                                     seeds=(0,), device="cuda")
