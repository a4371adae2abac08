"""Where a generated answer's time goes: host launch cost, kernel time, and other configurations.

Usage (on the GPU machine, from the repo root):

    python experiments/answer_probe.py --ids 03 05 07 13 14 --configs 12 --out $OUT/probe.json

For each problem (full sizes, fp32) it writes the offline answer and, in this one process:

* times the answer and PyTorch eager with the problem protocol's timer
  (:func:`eggsearch.problems.timing.time_forward`: device synchronized around every call, so the
  host's launch cost counts, as in ``check``);
* times the same calls back to back with ``triton.testing.do_bench`` (L2 flushed, host cost
  hidden behind the GPU's queue): what the kernels alone take;
* measures the host time of one call (enqueue only, the GPU idle before it), and for the
  default configuration also with every launch through ``kernel[grid](...)`` (the answer's
  ``_DIRECT`` off; :mod:`eggsearch.problems.launch`);
* re-times the answer at up to ``--configs`` other configurations of its search space (the
  expert seeds first, then the feasible configurations nearest the default), each checked against
  eager first; a wrong one is reported and not timed.

With ``--profile`` it also lists the kernels eager and the default answer run, each with its
device time per call (``torch.profiler``).

It ends with a micro-benchmark of Triton's launch path: the host time of ``kernel[grid](...)``
against calling the compiled kernel's launcher directly, for an empty kernel with the argument
count of a typical generated kernel.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from eggsearch.problems import timing  # noqa: E402
from eggsearch.problems.generate import build, hardware_env  # noqa: E402
from eggsearch.problems.loader import import_file, load_problem  # noqa: E402
from eggsearch.problems.verifier import INIT_SEED  # noqa: E402
from eggsearch.space import parse_structure_space  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def host_us(fn, reps: int = 50) -> float:
    """Median host time of one call, enqueue only, with the GPU idle before it."""
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    torch.cuda.synchronize()
    return statistics.median(out)


def kernel_times(fn, calls: int = 5) -> list[dict]:
    """The GPU kernels one call runs (torch.profiler), each with its mean device time per call."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0))
        if us > 0 and e.count >= calls:
            rows.append({"kernel": e.key[:90], "us_per_call": us / calls,
                         "launches_per_call": e.count / calls})
    return sorted(rows, key=lambda r: -r["us_per_call"])


def measure(fn, device: str) -> dict:
    """The protocol's time and, on a GPU, the back-to-back time and the host time."""
    t = timing.time_forward(fn, device)
    if device == "cpu":  # a dry run on the interpreter: wall clock only
        return {"protocol_ms": t.time_ms, "events_ms": None, "wall_ms": t.wall_ms,
                "empty_call_ms": 0.0, "back_to_back_ms": t.time_ms, "host_us": 0.0}
    import triton.testing

    return {"protocol_ms": t.time_ms, "events_ms": t.events_ms, "wall_ms": t.wall_ms,
            "empty_call_ms": t.overhead_ms, "back_to_back_ms": triton.testing.do_bench(fn),
            "host_us": host_us(fn)}


def distance(a: dict, b: dict) -> float:
    """Steps between two configs: log2 steps for numbers, 1 for each other change."""
    d = 0.0
    for k, v in a.items():
        w = b.get(k)
        if isinstance(v, int) and isinstance(w, int) and v > 0 and w > 0:
            d += abs(math.log2(v) - math.log2(w))
        else:
            d += v != w
    return d


def candidate_configs(gen, env: dict, n: int, seed: int = 0) -> list[dict]:
    """The answer's default, its seeds, then the feasible configs nearest the default."""
    space = parse_structure_space({**gen.space, "seeds": []}, "probe", set(env))
    out = [dict(gen.config)]
    out += [s for s in gen.space["seeds"] if not space.violations(s, env)]
    feasible, _ = space.enumerate(env, seed=seed)
    random.Random(seed).shuffle(feasible)
    feasible.sort(key=lambda cfg: distance(cfg, gen.config))
    out += feasible[:3 * n]
    unique = []
    for cfg in out:
        if cfg not in unique:
            unique.append(cfg)
    return unique[:n]


def probe_problem(path: Path, env: dict, n_configs: int, tmp: Path, device: str,
                  profile: bool = False) -> dict:
    problem = load_problem(path, device == "cpu")
    gen = build(problem, env)
    answer_path = tmp / path.name
    answer_path.write_text(gen.source)
    mod = import_file(answer_path, "solution")
    ref = problem.build(INIT_SEED, device)
    new = problem.build(INIT_SEED, device, mod.ModelNew)
    inputs = problem.inputs(0, device)

    def call(model):
        def fn():
            with torch.no_grad():
                return model(*inputs)
        return fn

    expected = call(ref)()
    row = {"problem": path.stem, "groups": list(gen.groups), "eager": measure(call(ref), device),
           "configs": []}
    if profile and device != "cpu":
        row["eager"]["kernels"] = kernel_times(call(ref))
    for cfg in candidate_configs(gen, env, n_configs):
        mod.CONFIG = cfg
        entry = {"config": cfg}
        try:
            got = call(new)()
            # a quick screen, not the verifier: normwise relative error against eager (at
            # K = 4096, eager itself misses an elementwise 1e-4 against float64); half
            # precision outputs differ by their own rounding (~5e-4)
            bound = 1e-5 if not isinstance(got, torch.Tensor) or got.dtype in (
                torch.float32, torch.float64) else 1e-2
            ok = (not isinstance(got, torch.Tensor)
                  or float((got.double() - expected.double()).norm()
                           / expected.double().norm().clamp_min(1e-30)) < bound)
            if not ok:
                entry["error"] = "wrong result"
            else:
                entry.update(measure(call(new), device))
        except Exception as exc:  # noqa: BLE001 - a probe reports and goes on
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if len(row["configs"]) == 0 and "error" not in entry and hasattr(mod, "_DIRECT"):
            direct = mod._DIRECT
            mod._DIRECT = False  # the same answer through kernel[grid](...) on every call
            entry["jit_path"] = measure(call(new), device)
            mod._DIRECT = direct
            if profile and device != "cpu":
                entry["kernels"] = kernel_times(call(new))
        row["configs"].append(entry)
        print(f"  {path.stem} {cfg} -> {entry.get('protocol_ms', entry.get('error'))}",
              flush=True)
    return row


@triton.jit
def _empty(a_ptr, b_ptr, R, C, I, NUMEL, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pass


def launch_path_probe() -> dict:
    """Host time of Triton's JIT launch path against the compiled kernel's launcher."""
    from triton.runtime import driver

    a = torch.empty(4096, device="cuda")
    b = torch.empty(4096, device="cuda")
    args = (a, b, 4096, 8192, 3, 4096 * 8192)
    kw = {"BLOCK_R": 1, "BLOCK_C": 8192}
    grid = (4096,)
    compiled = _empty[grid](*args, **kw, num_warps=16)
    dev = torch.cuda.current_device()

    def jit():
        _empty[grid](*args, **kw, num_warps=16)

    def direct():
        stream = driver.active.get_current_stream(dev)
        compiled.run(grid[0], 1, 1, stream, compiled.function, compiled.packed_metadata, None,
                     None, None, *args, 1, 8192)

    def alloc():
        torch.empty((4096, 8192), device="cuda")

    return {"jit_us": host_us(jit, 200), "direct_us": host_us(direct, 200),
            "torch_empty_us": host_us(alloc, 200),
            "torch_relu_us": host_us(lambda: torch.relu(a), 200)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", required=True)
    parser.add_argument("--dir", type=Path, default=ROOT / "tests" / "problems" / "set")
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", action="store_true",
                        help="also list eager's and the default answer's kernels (torch.profiler)")
    parser.add_argument("--dry-run", action="store_true",
                        help="SMALL sizes on the CPU interpreter (checks the script only)")
    args = parser.parse_args()

    device = "cpu" if args.dry_run else "cuda"
    env = hardware_env(device)
    name = "interpreter" if args.dry_run else torch.cuda.get_device_name(0)
    print(f"{name}; torch {torch.__version__}, triton "
          f"{triton.__version__}", flush=True)
    tmp = args.out.parent / "probe-answers"
    tmp.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in args.dir.glob("*.py") if p.stem.split("_")[0] in args.ids)
    report = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
              "launch": {}, "problems": []}
    if not args.dry_run:
        try:
            report["launch"] = launch_path_probe()
        except Exception as exc:  # noqa: BLE001 - internal API: report and go on
            report["launch"] = {"error": f"{type(exc).__name__}: {exc}"}
    print("launch path:", report["launch"], flush=True)
    for path in files:
        report["problems"].append(probe_problem(path, env, args.configs, tmp, device,
                                                 args.profile))
        args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{'problem':28} {'which':8} {'protocol':>9} {'b2b':>8} {'host us':>8}  config")
    for row in report["problems"]:
        e = row["eager"]
        print(f"{row['problem']:28} {'eager':8} {e['protocol_ms']:9.4f} "
              f"{e['back_to_back_ms']:8.4f} {e['host_us']:8.1f}")
        for c in row["configs"]:
            if "error" in c:
                print(f"{'':28} {'answer':8} {c['error'][:60]}  {c['config']}")
                continue
            print(f"{'':28} {'answer':8} {c['protocol_ms']:9.4f} {c['back_to_back_ms']:8.4f} "
                  f"{c['host_us']:8.1f}  {c['config']}")
            if "jit_path" in c:
                j = c["jit_path"]
                print(f"{'':28} {'(jit)':8} {j['protocol_ms']:9.4f} {j['back_to_back_ms']:8.4f} "
                      f"{j['host_us']:8.1f}  the same through kernel[grid](...)")
    for row in report["problems"]:
        for who, kernels in [("eager", row["eager"].get("kernels"))] + [
                ("answer", c.get("kernels")) for c in row["configs"][:1]]:
            for k in kernels or []:
                print(f"{row['problem']:28} {who:8} {k['us_per_call']:9.1f} us "
                      f"x{k['launches_per_call']:.0f}  {k['kernel']}")


if __name__ == "__main__":
    main()
