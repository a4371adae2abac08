"""Scripted agent replies for the tests: a correct softmax template, broken and unsafe variants,
and the planner's, debugger's and advisor's JSON."""

from __future__ import annotations

import json

GOOD_KERNEL = '''import torch
import triton
import triton.language as tl


@triton.jit
def _softmax_rows_kernel(x_ptr, y_ptr, stride_xm, stride_ym, N, BLOCK_N: tl.constexpr):
    """One row of x [M, N] per program; the whole row in registers (BLOCK_N >= N)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(y_ptr + row * stride_ym + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def launch(x, *, out, BLOCK_N, num_warps):
    M, N = x.shape
    _softmax_rows_kernel[(M,)](x, out, x.stride(0), out.stride(0), N, BLOCK_N=BLOCK_N,
                               num_warps=num_warps)
'''

# Compiles nowhere: tl.exp2x does not exist.
COMPILE_ERROR_KERNEL = GOOD_KERNEL.replace("e = tl.exp(x - ", "e = tl.exp2x(x - ")
# Runs, but every value is 1.5 times too large.
WRONG_KERNEL = GOOD_KERNEL.replace("y = e / tl.sum(e, axis=0)", "y = 1.5 * e / tl.sum(e, axis=0)")


def unsafe_kernel(marker: str) -> str:
    """Writes ``marker`` at import time, and reaches for os: must never be imported."""
    return (f"import os\nopen({marker!r}, 'w').write('imported')\n"
            + GOOD_KERNEL.replace("    M, N = x.shape\n", "    M, N = x.shape\n"
                                  "    os.system('true')\n"))


SPACE = """op: softmax
structures:
  rows:
    params:
      BLOCK_N: {pow2: [64, 4096]}
      num_warps: {pow2: [1, 8]}
    constraints:
      - {name: whole_row, expr: "BLOCK_N >= N", why: "the kernel holds the whole row"}
    seeds:
      - {BLOCK_N: 512, num_warps: 4}
"""


def coder_reply(source: str, space: str = SPACE) -> str:
    return (f"Here is the kernel.\n\n```python\n{source}```\n\nAnd its space:\n\n"
            f"```yaml\n{space}```\n")


def planner_reply(*names: str) -> str:
    return "```json\n" + json.dumps({"plans": [
        {"name": n, "categories": ["fusion"], "idea": f"{n}: one row per program, "
         "max, exp and sum fused in registers", "steps": ["load", "reduce", "store"],
         "tunables": ["BLOCK_N", "num_warps"]} for n in names]}) + "\n```"


DEBUGGER_REPLY = json.dumps({
    "root_cause": "the kernel calls tl.exp2x, which Triton does not have",
    "category": "compile_error",
    "modification_plan": ["use tl.exp", "keep the masks"]})

WRONG_DEBUGGER_REPLY = json.dumps({
    "root_cause": "the result is scaled by 1.5 after normalization",
    "category": "incorrect", "modification_plan": ["drop the factor 1.5"]})


def advisor_reply(structure: str, *configs: dict) -> str:
    return json.dumps({"configs": [{"structure": structure, "config": c, "why": "try it"}
                                   for c in configs], "notes": "scripted"})
