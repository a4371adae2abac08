"""Where does matmul fp16 4096^3 lose to cuBLAS? Three timers on the same calls, and a grid.

Usage (on the GPU machine, from the repo root):

    python experiments/matmul_probe.py --out $OUT/matmul-probe.json [--grid] [--streamk] \
        [--gluon] [--only TEXT] [--rounds N] [--power-seconds S]

``--streamk`` and ``--gluon`` add the ``streamk`` and ``wgmma_ws`` structures' configs at this
shape (a candidate that fails or computes wrong is reported and left out); ``--rounds N`` then
times every candidate again in N alternating rounds (the order reversed every other round);
``--power-seconds S`` runs each back to back for S seconds and reports the SM clock and board
power nvidia-smi saw meanwhile (``gpu_power.py``).

For cuBLAS (``torch.matmul``) and the best ``descriptor`` configs found so far it reports:

- ``events``: eggsearch's timer (:func:`eggsearch.timing.bench_cuda`: L2 flushed, one CUDA
  event pair around each call, median);
- ``events+busy``: the same, with the GPU kept busy (``torch.cuda._sleep``) while the host
  enqueues the call, so host-side launch cost (Triton's launcher, building tensor descriptors)
  cannot leave the GPU idle between the events;
- ``kernel``: the median of the kernels' own durations from the CUDA profiler (CUPTI);
- ``host us``: host time to enqueue one call (no GPU wait).

If ``events`` is much above ``kernel`` for one side only, the comparison measures the launcher
rather than the kernel. ``--grid`` also times a grid of ``descriptor`` configs around the best
one with ``events`` and ``kernel``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpu_power import power  # noqa: E402  (experiments/, the script's folder)

from eggsearch.ops.matmul import launch_descriptor, launch_streamk, launch_tiled  # noqa: E402
from eggsearch.ops.matmul_gluon import launch_wgmma_ws  # noqa: E402
from eggsearch.timing import FLUSH_BYTES, bench_cuda  # noqa: E402

BEST = dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, PERSISTENT=True, FLATTEN=True,
            EPILOGUE_SUBTILE=True, num_warps=8, num_stages=4, INPUT_PRECISION="ieee")
STREAMK = [dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, SK_PIECES=2, FLATTEN=True,
                EPILOGUE_SUBTILE=sub, num_warps=8, num_stages=stages, INPUT_PRECISION="ieee")
           for sub, stages in [(True, 4), (False, 3)]]
WGMMA_WS = [dict(BLOCK_N=256, BLOCK_K=64, GROUP_M=g, STAGES=st, SPLIT_N=sp, SHARED_C=sh,
                 BALANCED_GRID=bal)
            for g, st, sp, sh, bal in [(8, 3, False, False, False), (8, 3, False, False, True),
                                       (16, 3, False, False, True), (8, 4, False, True, False),
                                       (8, 4, False, True, True), (16, 4, False, True, True),
                                       (4, 4, True, False, True), (4, 4, True, False, False)]]
BEST_TILED = dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3,
                  INPUT_PRECISION="ieee")


def bench_busy(fn, reps=200):
    """Like bench_cuda, but a GPU-side sleep precedes each timed call's enqueue."""
    import torch

    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        flush.zero_()
        torch.cuda._sleep(400_000)  # ~0.2 ms of GPU time while the host enqueues
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def kernel_time(fn, reps=50):
    """Median duration (ms) of the longest GPU kernel each call launches, from the profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            flush.zero_()
            fn()
        torch.cuda.synchronize()
    durations = {}
    for ev in prof.events():
        skip = any(w in ev.name.lower() for w in ("fill", "zero", "sleep"))
        if ev.device_type.name == "CUDA" and not skip:
            durations.setdefault(ev.name, []).append(ev.device_time_total / 1e3)
    name, times = max(durations.items(), key=lambda kv: sum(kv[1]))
    return statistics.median(times), name[:60]


def host_us(fn, calls=200):
    import torch

    torch.cuda._sleep(50_000_000)  # keep the GPU busy so nothing waits on it
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t = (time.perf_counter() - t0) / calls * 1e6
    torch.cuda.synchronize()
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--streamk", action="store_true",
                        help="also the streamk structure (its seeds at this shape)")
    parser.add_argument("--gluon", action="store_true",
                        help="also the wgmma_ws structure (Gluon, sm_90)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="then time every candidate again in this many alternating rounds")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="keep only the candidates whose name contains TEXT (repeatable: "
                             "any); cuBLAS is always kept")
    parser.add_argument("--power-seconds", type=float, default=0.0,
                        help="then run every candidate this long back to back, sampling the SM "
                             "clock and the board power")
    args = parser.parse_args()

    import torch
    import triton

    M = N = K = 4096
    flops = 2 * M * N * K
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(M, K, device="cuda", dtype=torch.float16, generator=gen)
    b = torch.randn(K, N, device="cuda", dtype=torch.float16, generator=gen)
    out = torch.empty(M, N, device="cuda", dtype=torch.float16)
    ref = a.float() @ b.float()

    candidates = {
        "cublas": lambda: torch.matmul(a, b),
        "descriptor best": lambda: launch_descriptor(a, b, out=out, **BEST),
        "tiled 128x256x64": lambda: launch_tiled(a, b, out=out, **BEST_TILED),
    }
    if args.streamk:
        candidates["descriptor 3 stages"] = lambda: launch_descriptor(
            a, b, out=out, **dict(BEST, EPILOGUE_SUBTILE=False, num_stages=3))
        for cfg in STREAMK:
            name = f"streamk sub{int(cfg['EPILOGUE_SUBTILE'])} s{cfg['num_stages']}"
            candidates[name] = (lambda c: lambda: launch_streamk(a, b, out=out, **c))(cfg)
    if args.gluon:
        for cfg in WGMMA_WS:
            name = (f"wgmma_ws {cfg['BLOCK_N']}x{cfg['BLOCK_K']} g{cfg['GROUP_M']} "
                    f"s{cfg['STAGES']}{' split' if cfg['SPLIT_N'] else ''}"
                    f"{' sharedC' if cfg['SHARED_C'] else ''}"
                    f"{' balanced' if cfg['BALANCED_GRID'] else ''}")
            candidates[name] = (lambda c: lambda: launch_wgmma_ws(a, b, out=out, **c))(cfg)
    candidates = {name: fn for name, fn in candidates.items()
                  if name == "cublas" or not args.only or any(t in name for t in args.only)}

    def verify(fn) -> None:
        """Run ``fn`` into a NaN-poisoned ``out``; raise if it is not the product."""
        out.fill_(float("nan"))
        fn()
        torch.cuda.synchronize()
        err = float((out.float() - ref).norm() / ref.norm())
        if not err < 1e-3:
            raise RuntimeError(f"wrong result (rel err {err:.3g})")

    rows = []
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}, triton "
          f"{triton.__version__}")
    print(f"{'what':34} {'events':>9} {'ev+busy':>9} {'kernel':>9} {'TFLOP/s k':>9} "
          f"{'host us':>8}")
    for name, fn in list(candidates.items()):
        try:
            fn()
            torch.cuda.synchronize()
            if name != "cublas":
                verify(fn)
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure and goes on
            print(f"{name}: left out: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
            del candidates[name]
            continue
        ev = bench_cuda(fn)[0]
        busy = bench_busy(fn)
        kern, kname = kernel_time(fn)
        host = host_us(fn)
        rows.append(dict(what=name, events_ms=ev, busy_ms=busy, kernel_ms=kern, kernel=kname,
                         host_us=host))
        print(f"{name:34} {ev:9.4f} {busy:9.4f} {kern:9.4f} {flops / kern / 1e9:9.1f} "
              f"{host:8.1f}", flush=True)

    rounds = {name: [] for name in candidates}
    for r in range(args.rounds):
        order = list(candidates.items())
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            rounds[name].append(bench_cuda(fn)[0])
    if args.rounds:
        print(f"\nalternating rounds (events ms; median of {args.rounds}), and vs cuBLAS")
        cublas = statistics.median(rounds["cublas"])
        for name, times in rounds.items():
            med = statistics.median(times)
            print(f"{name:34} {med:9.4f}  {cublas / med:5.3f}x  "
                  + " ".join(f"{t:.4f}" for t in times))
        for row in rows:
            row["rounds_ms"] = rounds[row["what"]]

    if args.power_seconds:
        print(f"\neach back to back for {args.power_seconds:g} s (nvidia-smi every 50 ms)")
        print(f"{'what':34} {'ms/call':>9} {'TFLOP/s':>9} {'SM MHz':>7} {'W':>5}")
        for row in power(list(candidates.items()), args.power_seconds):
            match = next(r for r in rows if r["what"] == row["what"])
            match["back_to_back"] = row
            print(f"{row['what']:34} {row['ms_per_call']:9.4f} "
                  f"{flops / row['ms_per_call'] / 1e9:9.1f} {row['sm_mhz']:7.0f} "
                  f"{row['watts']:5.0f}", flush=True)

    grid = []
    if args.grid:
        print("\ndescriptor grid (events ms, kernel ms, TFLOP/s by kernel time)")
        space = itertools.product([(128, 256, 64), (256, 128, 64), (128, 128, 64),
                                   (128, 256, 32), (128, 128, 128)],
                                  [8], [3, 4, 5], [True, False])
        for (bm, bn, bk), group, stages, subtile in space:
            cfg = dict(BEST, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=group,
                       num_stages=stages, EPILOGUE_SUBTILE=subtile)
            smem = stages * (bm + bn) * bk * 2 + bm * (bn // 2 if subtile else bn) * 2
            if smem > 232448:
                continue
            fn = (lambda c: lambda: launch_descriptor(a, b, out=out, **c))(cfg)
            try:
                verify(fn)
                ev = bench_cuda(fn)[0]
                kern, _ = kernel_time(fn, reps=20)
            except Exception as exc:  # compile failure, out of resources
                print(f"  {bm}x{bn}x{bk} G{group} s{stages} sub{int(subtile)}: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
                continue
            grid.append(dict(cfg, events_ms=ev, kernel_ms=kern))
            print(f"  {bm}x{bn}x{bk} G{group} s{stages} sub{int(subtile)}: {ev:.4f} "
                  f"{kern:.4f} {flops / kern / 1e9:.1f}", flush=True)
        grid.sort(key=lambda r: r["kernel_ms"])
        print("best 5 by kernel time:")
        for r in grid[:5]:
            print(f"  {r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(device=torch.cuda.get_device_name(0),
                                        torch=torch.__version__, triton=triton.__version__,
                                        rows=rows, grid=grid), indent=1))


if __name__ == "__main__":
    main()
