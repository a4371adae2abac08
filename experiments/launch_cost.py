"""Where a generated answer's host time goes: one pointwise kernel launched every way we can.

The problem protocol synchronizes the device around each call, so an answer's host time is part
of its measured time (``eggsearch/problems/timing.py``). This script takes one gelu-like
pointwise kernel on a [4096, 16384] fp32 tensor (problem 03's shape) and measures, on one GPU:

* the host time of each piece of a generated forward (``torch.empty_like``, ``.contiguous()``,
  the current device and stream, the cache key, the launch itself);
* whole forwards launched five ways: eager PyTorch, ``kernel[grid](...)``, the compiled
  kernel's launcher with tensors (what answers did in session 3), the launcher with raw
  pointers (no ``cuPointerGetAttribute`` per tensor), and the C ``launch`` function itself
  (no Python frame in between);
* each forward's protocol time (``timing.time_forward``) and back-to-back time.

With ``--answers 03 05`` it also takes those problems' generated answers (offline, full size)
and times each whole (``model(x)``), without the module call (``_forward``), and with ``_run``
made a no-op: the answer's Python without any launch.

Host time: median over calls of the wall time to enqueue one call, the GPU idle before it.

    python experiments/launch_cost.py --answers 03 05 --out runs/launch-cost.json

The Triton-internal parts are written against Triton 3.6's NVIDIA launcher (``CompiledKernel.run``
is a ``CudaLauncher`` whose ``launch`` is the C function). ``--dry-run`` runs the torch-only
pieces on the CPU to check the script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
import triton.testing  # noqa: E402

from eggsearch.problems import timing  # noqa: E402

SHAPE = (4096, 16384)
BLOCK = 1024


@triton.jit
def _gelu_kernel(x_ptr, o_ptr, NUMEL, BLOCK: tl.constexpr):
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = flat < NUMEL
    x = tl.load(x_ptr + flat, mask=mask, other=0)
    y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    tl.store(o_ptr + flat, y, mask=mask)


def host_us(fn, reps: int = 300) -> float:
    """Median host time of one call, the GPU idle before it."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(5):
        fn()
    sync()
    out = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    sync()
    return statistics.median(out)


def answer_parts(pid: str, device: str, tmp: Path) -> dict:
    """Problem ``pid``'s offline answer, timed whole and in parts (see the module docstring)."""
    from eggsearch.problems.generate import build, hardware_env
    from eggsearch.problems.loader import import_file, load_problem
    from eggsearch.problems.verifier import INIT_SEED

    path = next((ROOT / "tests" / "problems" / "set").glob(f"{pid}_*.py"))
    problem = load_problem(path, device == "cpu")
    gen = build(problem, hardware_env(device))
    answer = tmp / f"launch-cost-{path.name}"
    answer.write_text(gen.source)
    mod = import_file(answer, f"answer_{pid}")
    ref = problem.build(INIT_SEED, device)
    new = problem.build(INIT_SEED, device, mod.ModelNew)
    inputs = problem.inputs(0, device)

    def timed(fn) -> dict:
        row = {"host_us": host_us(fn)}
        if device == "cuda":
            row["protocol_ms"] = timing.time_forward(fn, device).time_ms
        return row

    out = {}
    with torch.no_grad():
        out["eager model(x)"] = timed(lambda: ref(*inputs))
        out["answer model(x)"] = timed(lambda: new(*inputs))
        # _forward's state list is the module's parameters in a generated order: only
        # answers without any are called that way here
        if not new.state_dict():
            out["answer _forward(...)"] = timed(lambda: mod._forward(mod.CONFIG, [], *inputs))
        run = mod._run
        mod._run = lambda *a: None
        out["answer model(x), _run a no-op"] = timed(lambda: new(*inputs))
        mod._run = run
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="torch-only pieces, on the CPU")
    parser.add_argument("--answers", nargs="*", default=[],
                        help="problem ids whose generated answers to take apart")
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    x = torch.randn(SHAPE, device=device)
    numel = x.numel()
    grid = (triton.cdiv(numel, BLOCK),)
    report: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                    "torch": torch.__version__, "triton": triton.__version__,
                    "pieces_us": {}, "forwards": {}}
    pieces = report["pieces_us"]
    pieces["torch.empty_like"] = host_us(lambda: torch.empty_like(x))
    pieces["x.contiguous()"] = host_us(lambda: x.contiguous())
    pieces["x.data_ptr()"] = host_us(lambda: x.data_ptr())
    pieces["key (2 tensors: dtype, data_ptr & 15)"] = host_us(
        lambda: (x.dtype, x.data_ptr() & 15, x.dtype, x.data_ptr() & 15, numel, BLOCK, 4))
    pieces["x.device"] = host_us(lambda: x.device)
    forwards = {"eager gelu": lambda: torch.nn.functional.gelu(x)}
    if device == "cuda":
        from triton.runtime import driver

        drv = driver.active
        dev = drv.get_current_device()
        pieces["driver get_current_device"] = host_us(drv.get_current_device)
        pieces["driver get_current_stream"] = host_us(lambda: drv.get_current_stream(dev))
        o = torch.empty_like(x)
        k = _gelu_kernel[grid](x, o, numel, BLOCK=BLOCK, num_warps=4)
        run, launch = k.run, k.run.launch
        meta, fn_handle = k.packed_metadata, k.function
        coop, pdl = run.launch_cooperative_grid, run.launch_pdl
        report["scratch"] = [run.global_scratch_size, run.profile_scratch_size]
        pieces["kernel[grid] (launch only)"] = host_us(
            lambda: _gelu_kernel[grid](x, o, numel, BLOCK=BLOCK, num_warps=4))
        pieces["k.run, tensors"] = host_us(
            lambda: run(grid[0], 1, 1, drv.get_current_stream(dev), fn_handle, meta, None, None,
                        None, x, o, numel, BLOCK))
        pieces["k.run, pointers"] = host_us(
            lambda: run(grid[0], 1, 1, drv.get_current_stream(dev), fn_handle, meta, None, None,
                        None, x.data_ptr(), o.data_ptr(), numel, BLOCK))
        pieces["k.run.launch, pointers"] = host_us(
            lambda: launch(grid[0], 1, 1, drv.get_current_stream(dev), fn_handle, coop, pdl,
                           None, None, meta, None, None, None, x.data_ptr(), o.data_ptr(), numel,
                           BLOCK))

        def via_jit():
            out = torch.empty_like(x)
            _gelu_kernel[grid](x, out, numel, BLOCK=BLOCK, num_warps=4)
            return out

        def via_run_tensors():
            t0 = x.contiguous()
            out = torch.empty_like(t0)
            _key = (t0.dtype, t0.data_ptr() & 15, out.dtype, out.data_ptr() & 15, numel)
            d = drv.get_current_device()
            run(grid[0], 1, 1, drv.get_current_stream(d), fn_handle, meta, None, None, None,
                t0, out, numel, BLOCK)
            return out

        def via_run_pointers():
            t0 = x.contiguous()
            out = torch.empty_like(t0)
            p0, p1 = t0.data_ptr(), out.data_ptr()
            _key = (t0.dtype, p0 & 15, t0.device, out.dtype, p1 & 15, numel)
            d = drv.get_current_device()
            run(grid[0], 1, 1, drv.get_current_stream(d), fn_handle, meta, None, None, None,
                p0, p1, numel, BLOCK)
            return out

        def via_launch_pointers():
            t0 = x.contiguous()
            out = torch.empty_like(t0)
            p0, p1 = t0.data_ptr(), out.data_ptr()
            _key = (t0.dtype, p0 & 15, t0.device, out.dtype, p1 & 15, numel)
            d = drv.get_current_device()
            launch(grid[0], 1, 1, drv.get_current_stream(d), fn_handle, coop, pdl, None, None,
                   meta, None, None, None, p0, p1, numel, BLOCK)
            return out

        forwards.update({"kernel[grid]": via_jit, "k.run, tensors": via_run_tensors,
                         "k.run, pointers": via_run_pointers,
                         "k.run.launch, pointers": via_launch_pointers})
        want = torch.nn.functional.gelu(x)
        for name, fn in forwards.items():
            got = fn()
            torch.cuda.synchronize()
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), name
    for name, fn in forwards.items():
        row = {"host_us": host_us(fn)}
        if device == "cuda":
            t = timing.time_forward(fn, device)
            row.update(protocol_ms=t.time_ms, back_to_back_ms=triton.testing.do_bench(fn))
        report["forwards"][name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report["answers"] = {pid: answer_parts(pid, device, args.out.parent)
                         for pid in args.answers}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{report['device']}; torch {report['torch']}, triton {report['triton']}")
    print(f"\n{'piece':44} {'host us':>8}")
    for name, us in pieces.items():
        print(f"{name:44} {us:8.2f}")
    print(f"\n{'forward':28} {'host us':>8} {'protocol ms':>12} {'b2b ms':>8}")
    for name, row in report["forwards"].items():
        print(f"{name:28} {row['host_us']:8.2f} {row.get('protocol_ms', float('nan')):12.4f} "
              f"{row.get('back_to_back_ms', float('nan')):8.4f}")
    for pid, rows in report["answers"].items():
        print(f"\n{'answer ' + pid:40} {'host us':>8} {'protocol ms':>12}")
        for name, row in rows.items():
            print(f"{name:40} {row['host_us']:8.2f} {row.get('protocol_ms', float('nan')):12.4f}")


if __name__ == "__main__":
    main()
