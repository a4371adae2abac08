"""GPU benchmark of the core pipeline: every op at its default GPU shape, one study each.

Usage (on the GPU machine, from the repo root):

    python experiments/gpu_benchmark.py --out $OUT/bench [--suite core|blocks|all]
        [--ops matmul,softmax] [--trials 64]

Measures the device-to-device copy bandwidth first (the yardstick for memory-bound ops), then
runs ``eggsearch run`` for each op and prints a table: best time, PyTorch eager time, speedup,
% of the roofline bound, % of the measured copy bandwidth, trials by status and wall time. Full
summaries go to ``<out>/benchmark.json`` and the table to ``<out>/benchmark.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eggsearch.cli import build_parser  # noqa: E402
from eggsearch.runner import run  # noqa: E402

# Suites of (op, shape, dtype, trials, options). "core": the core pipeline's targets (exact-fp32
# matmul last); "blocks": attention and the fused LLM-block ops.
SUITES = {
    "core": [
        ("matmul", "4096x4096x4096", "fp16", 64, {}),
        ("softmax", "8192x8192", "fp16", 64, {}),
        ("layernorm", "8192x8192", "fp16", 64, {}),
        ("rmsnorm", "8192x8192", "fp16", 64, {}),
        ("matmul", "4096x4096x4096", "fp32", 32, {}),
    ],
    "blocks": [
        ("attention", "8x32x4096x128", "fp16", 24, {"causal": "1"}),
        ("matmul_epilogue", "4096x4096x4096", "fp16", 24, {"epilogue": "bias,gelu"}),
        ("cross_entropy", "8192x128256", "fp32", 24, {}),
        ("add_rmsnorm", "8192x8192", "fp16", 24, {}),
        ("swiglu", "4096x11008x4096", "fp16", 16, {}),
    ],
}


def copy_bandwidth() -> float:
    """Bytes read + written per second by a 2 GiB device-to-device copy (median of repeats)."""
    import torch

    from eggsearch.timing import bench_cuda

    src = torch.empty(2**30 // 2, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    median_ms, *_ = bench_cuda(lambda: dst.copy_(src), rep_ms=300)
    return 2 * src.numel() * src.element_size() / (median_ms * 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--suite", default="core", help=f"one of {', '.join(SUITES)}, or all")
    parser.add_argument("--ops", help="comma-separated op names (default: all cases)")
    parser.add_argument("--trials", type=int, help="trials per case (default: each case's)")
    parser.add_argument("--case-timeout", type=float,
                        help="seconds per case after which no new trial starts (run --timeout)")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suite = [c for name, cases in SUITES.items() if args.suite in (name, "all") for c in cases]
    cases = [c for c in suite if not args.ops or c[0] in args.ops.split(",")]

    copy_bw = copy_bandwidth()
    print(f"device-to-device copy: {copy_bw / 1e12:.2f} TB/s", flush=True)
    results = []
    table = ""
    for op, shape, dtype, trials, options in cases:
        flags = [f for k, v in options.items() for f in ("--option", f"{k}={v}")]
        if args.case_timeout:
            flags += ["--timeout", str(args.case_timeout)]
        run_args = build_parser().parse_args([
            "run", "--op", op, "--shape", shape, "--dtype", dtype, "--trials",
            str(args.trials or trials), "--sampler", args.sampler, "--seed", str(args.seed),
            "--backend", "gpu", "--out", str(args.out / f"{op}-{shape}-{dtype}"), *flags])
        t0 = time.monotonic()
        try:
            summary = run(run_args)
        except Exception as exc:  # one broken case must not cost the others their GPU time
            print(f"{op} {shape} {dtype}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        summary["benchmark_wall_s"] = time.monotonic() - t0
        summary["measured_copy_bandwidth"] = copy_bw
        results.append(summary)
        print(f"{op} {shape} {dtype}: done in {summary['benchmark_wall_s']:.0f} s", flush=True)
        (args.out / "benchmark.json").write_text(json.dumps(results, indent=2))
        table = format_results(results, copy_bw)
        (args.out / "benchmark.md").write_text(table + "\n")
    print(table if results else "no case finished")


def _options(s: dict) -> str:
    opts = s.get("options") or {}
    return f" ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else ""


def format_results(results: list[dict], copy_bw: float) -> str:
    first = results[0]["device"]
    head = (f"GPU: {first.get('name')} | torch {first.get('torch')} | triton {first.get('triton')}"
            f" | measured copy bandwidth {copy_bw / 1e12:.2f} TB/s\n\n")
    rows = ["| op | shape | dtype | best structure | best | PyTorch | speedup in study "
            "| head-to-head | % roofline | % copy BW | TFLOP/s | trials by status | wall |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in results:
        best, roof = s["best"], s["roofline"]
        status = ", ".join(f"{k} {v}" for k, v in s["trials"]["by_status"].items())
        if best is None:
            rows.append(f"| {s['op']} | {s['shape']} | {s['dtype']} | none correct | - | "
                        f"{s['pytorch'].get('time_ms') or 0:.4f} ms | - | - | - | - | - | "
                        f"{status} | "
                        f"{s['benchmark_wall_s']:.0f} s |")
            continue
        t = best["time_ms"] * 1e-3
        h2h = s.get("head_to_head") or {}
        h2h_text = (f"{h2h['speedup']:.2f}x ({h2h['best_ms']:.4f} vs {h2h['pytorch_ms']:.4f} ms)"
                    if h2h.get("speedup") else "-")
        study_speedup = s.get("study_speedup", s["speedup"])
        rows.append(
            f"| {s['op']}{_options(s)} | {s['shape']} | {s['dtype']} | {best['structure']} | "
            f"{best['time_ms']:.4f} ms | {s['pytorch']['time_ms']:.4f} ms | "
            f"{study_speedup:.2f}x | {h2h_text} | {100 * (roof.get('fraction') or 0):.1f}% | "
            f"{100 * roof['min_bytes'] / t / copy_bw:.1f}% | {roof['flops'] / t / 1e12:.1f} | "
            f"{status} | {s['benchmark_wall_s']:.0f} s |")
    return head + "\n".join(rows)


if __name__ == "__main__":
    main()
