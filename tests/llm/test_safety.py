"""The static screen: a real kernel passes; every way out of the sandbox we know of is refused
(and the screen never imports or runs what it reads)."""

from __future__ import annotations

import pytest

from eggsearch.llm.safety import launcher_keywords, screen
from tests.llm.scripts import GOOD_KERNEL

HEADER = "import torch\nimport triton\nimport triton.language as tl\n"
KERNEL = '''
@triton.jit
def _k(x_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs))
'''


def module(launcher_body: str, top: str = "") -> str:
    body = "\n".join("    " + line for line in launcher_body.splitlines())
    return f"{HEADER}{top}{KERNEL}\n\ndef launch(x, *, out, BLOCK):\n{body}\n"


def test_a_real_kernel_passes():
    assert screen(GOOD_KERNEL) == []
    assert launcher_keywords(GOOD_KERNEL) == ({"x", "out", "BLOCK_N", "num_warps"}, False)
    assert screen(module("_k[(1,)](out, BLOCK=BLOCK)", "import math\n")) == []


@pytest.mark.parametrize("launcher, top, reason", [
    ("pass", "import os\n", "import os is not allowed"),
    ("pass", "import subprocess as sp\n", "import subprocess is not allowed"),
    ("pass", "from socket import socket\n", "from socket import"),
    ("pass", "from os import system\n", "from os import"),
    ("pass", "import triton.runtime.driver\n", "import triton.runtime.driver is not allowed"),
    ("pass", "from . import secrets\n", "from . import"),
    ("pass", "from torch import load\n", "importing load from torch"),
    ("open('/etc/passwd').read()", "", "`open` is not allowed"),
    ("eval('1+1')", "", "`eval` is not allowed"),
    ("exec('x = 1')", "", "`exec` is not allowed"),
    ("compile('1', 'f', 'eval')", "", "`compile` is not allowed"),
    ("__import__('os').system('true')", "", "`__import__` is not allowed"),
    ("__builtins__['open']('f')", "", "dunder name `__builtins__`"),
    ("getattr(torch, 'lo' + 'ad')('f')", "", "`getattr` is not allowed"),
    ("globals()['x'] = 1", "", "`globals` is not allowed"),
    ("x.__class__.__bases__[0].__subclasses__()", "", "dunder attribute `.__class__`"),
    ("torch._C._get_tracing_state()", "", "private or dunder attribute `._C`"),
    ("'{0.__class__}'.format(x)", "", "strings containing '__'"),
    ("torch.load('weights.pt')", "", "torch.load is not allowed"),
    ("torch.hub.load('a', 'b')", "", "torch.hub is not allowed"),
    ("torch.utils.cpp_extension.load_inline('m', '')", "", "torch.utils is not allowed"),
    ("torch.ops.load_library('x.so')", "", "torch.ops is not allowed"),
    ("out.copy_(torch.softmax(x, -1))", "", "torch.softmax is not allowed"),
    ("out.copy_(x.softmax(-1))", "", "`.softmax` computes with PyTorch"),
    ("out[:] = x.exp() / x.exp().sum(-1, keepdim=True)", "", "`.exp` computes with PyTorch"),
    ("pass", "print('imported')\n", "only imports, functions and constants"),
    ("pass", "if True:\n    x = 1\n", "only imports, functions and constants"),
    ("pass", "class Evil:\n    pass\n", "class definitions are not allowed"),
    ("global X", "", "global/nonlocal"),
    ("pass", "def __getattr__(name):\n    return 1\n", "dunder definition"),
    ("builtins = 1", "", "`builtins` is not allowed"),
    ("triton.runtime.cache.os.system('true')", "", "triton.runtime is not allowed"),
    ("triton.runtime.cache.os.system('true')", "", "attribute `.os` is not allowed"),
    ("tl.core.builtins.open('f')", "", "attribute `.builtins` is not allowed"),
    ("tl.extra.pkgutil.resolve_name('os:system')", "", "attribute `.pkgutil`"),
    ("torch.cuda.os.system('true')", "", "attribute `.os` is not allowed"),
    ("torch.cuda.memory.list_gpu_processes()", "", "torch.cuda.memory is not allowed"),
    ("pass", "from triton import runtime\n", "importing runtime from triton"),
    ("t = torch\nt.load('f')", "", "the module `torch` may only be used as `torch.<name>`"),
    ("f = [triton]", "", "the module `triton` may only be used"),
    ("th.load('f')", "import torch as th\n", "torch.load is not allowed"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_escapes_are_refused(launcher, top, reason):
    reasons = screen(module(launcher, top))
    assert any(reason in r for r in reasons), reasons


def test_structural_requirements():
    assert any("does not parse" in r for r in screen("def launch(:\n"))
    no_kernel = f"{HEADER}\ndef launch(x, *, out):\n    pass\n"
    assert any("no @triton.jit kernel" in r for r in screen(no_kernel))
    assert any("no launcher" in r for r in screen(GOOD_KERNEL, launcher="run_it"))
    no_out = GOOD_KERNEL.replace("*, out, BLOCK_N", "*, BLOCK_N")
    assert any("takes no `out`" in r for r in screen(no_out))


def test_kernels_may_use_triton_reductions():
    # tl.sum / tl.exp / tl.max inside and outside kernels are Triton, not PyTorch.
    src = GOOD_KERNEL.replace("    M, N = x.shape\n",
                              "    M, N = x.shape\n    c = tl.cdiv(N, 2)\n")
    assert screen(src) == []
