"""How a generated answer launches its kernels: Triton's launch without its per-call binding.

An answer is timed per call with the device synchronized around it (as KernelBench times), so
the host's cost of a launch is part of its time. On the H200 used here that cost was 30-60 us
for a generated answer against 12-20 us for eager PyTorch
(``experiments/answer_probe.py``); at the problem set's 0.07-0.15 ms kernels that decides
whether an answer wins.

``kernel[grid](...)`` binds and specializes every argument, builds a cache key and looks the
compiled kernel up on each call. The answer's ``_run`` keeps the compiled kernel that call
returns under a key its call site writes out (each pointer's dtype and 16-byte alignment, every
integer argument's value, the constexprs and launch options: what Triton specializes a
compilation on, or finer) and later calls with the same key run the compiled kernel's C launch
function directly (its Python wrapper, ``CompiledKernel.run``, where the kernel needs scratch
memory). The direct path is taken on the Triton version it was written against (3.6) and when
no launch hook is registered (a profiler); otherwise, and on the interpreter, every call is
``kernel[grid](...)``.
"""

from __future__ import annotations

import re

TENSOR_NAME = re.compile(r"(t\d+|o\d+|part\d+|ta|tb|tb_lo)")

LAUNCH_SOURCE = '''
# ---- launching: Triton's launch, without its per-call argument binding ----
_COMPILED = {}
_DIRECT = triton.__version__.startswith("3.6.") and not triton.knobs.runtime.interpret
_DRIVER = []


def _prepared(kernel, k):
    """How to launch compiled kernel ``k`` again: its C launch function when it needs no
    scratch memory (what ``k.run`` would call, without the Python frame), else ``k.run``."""
    run = k.run
    if (hasattr(run, "launch") and getattr(run, "global_scratch_size", 1) == 0
            and getattr(run, "profile_scratch_size", 1) == 0):
        return (kernel, run.launch, k.function,
                (run.launch_cooperative_grid, run.launch_pdl, None, None, k.packed_metadata,
                 None, None, None))
    return kernel, run, k.function, (k.packed_metadata, None, None, None)


def _run(kernel, grid, args, consts, options, key):
    """``kernel[grid](*args, **consts, **options)``. The compiled kernel is kept under ``key``
    (pointer dtypes and 16-byte alignments, integer values, constexprs, options: everything
    Triton specializes on) and a later call with the same key runs its launcher directly."""
    rt = triton.knobs.runtime
    if (not _DIRECT or getattr(rt.launch_enter_hook, "calls", 1)
            or getattr(rt.launch_exit_hook, "calls", 1)):
        kernel[grid](*args, **consts, **options)
        return
    if not _DRIVER:
        drv = triton.runtime.driver.active
        _DRIVER.extend((drv.get_current_device, drv.get_current_stream))
    dev = _DRIVER[0]()
    # keyed by id: hashing a JITFunction hashes its source under a lock on every call
    hit = _COMPILED.get((id(kernel), dev, key))
    if hit is None or hit[0] is not kernel:
        k = kernel[grid](*args, **consts, **options)
        if hasattr(k, "packed_metadata") and hasattr(k, "function"):
            if len(_COMPILED) >= 1024:
                _COMPILED.clear()
            _COMPILED[(id(kernel), dev, key)] = _prepared(kernel, k)
        return
    _, launch, function, prefix = hit
    n = len(grid)
    launch(grid[0], grid[1] if n > 1 else 1, grid[2] if n > 2 else 1, _DRIVER[1](dev), function,
           *prefix, *args, *consts.values())
'''.strip()


def run_call(kernel: str, grid: str, args: list[str], consts: list[tuple[str, str]],
             options: list[tuple[str, str]]) -> str:
    """The ``_run`` statement of one launch. ``args`` are the kernel's positional arguments in
    its signature's order (tensors named ``t<i>``/``o<k>``/``part<j>``/``ta``/``tb``/``tb_lo``,
    every other one an integer expression), ``consts`` its constexprs in signature order (they
    come last)."""
    key = []
    for a in args:
        if TENSOR_NAME.fullmatch(a):
            key += [f"{a}.dtype", f"{a}.data_ptr() & 15"]
        else:
            key.append(a)
    key += [v for _, v in consts] + [v for _, v in options]
    as_dict = (lambda pairs: "{" + ", ".join(f"{k!r}: {v}" for k, v in pairs) + "}")
    return (f"_run({kernel}, {grid}, ({', '.join(args)},), {as_dict(consts)}, "
            f"{as_dict(options)}, ({', '.join(key)},))")
