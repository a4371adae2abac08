"""Attention structures against PyTorch's SDPA: correctness at odd shapes, then speed.

Part 1 checks every configuration given against a float64 attention on small and odd shapes
(S prime or not a multiple of any block; causal and not; D 64 and 128; fp16 and bf16): the
output is poisoned with NaN first, and the normwise relative error and the largest elementwise
error are compared with SDPA's own error against the same float64 truth.

Part 2 times them at one shape (default issue 6's: B 8, H 32, S 4096, D 128, causal, fp16) with
eggsearch's CUDA-event timer (L2 flushed, median of many calls), in ``--rounds`` alternating
rounds so that clock drift as the GPU heats hits every kernel alike; SDPA is timed as PyTorch
dispatches it and, where available, with each backend forced.

    python experiments/attention_variants.py --out runs/attention-variants.json

``--only TEXT`` keeps the configs whose label contains TEXT; ``--power-seconds N`` then runs
each kernel (and SDPA) N seconds back to back while nvidia-smi samples the clock and power.
The check also runs "ramp" inputs, whose scores rise along the keys so that row maxima keep
growing block after block (the online softmax's rescaling is exercised, not only block 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from gpu_power import power  # noqa: E402  (experiments/, the script's folder)

from eggsearch.ops.attention import OP, attention_float64  # noqa: E402
from eggsearch.timing import bench_cuda  # noqa: E402

TMA_BEST = ("flash_tma", {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 3,
                          "HEAVY_FIRST": True})
WGMMA = [("flash_wgmma", {"BLOCK_M": bm, "BLOCK_N": bn, "STAGES": st, "HEAVY_FIRST": hf,
                          "WARP_SPECIALIZE": ws, "PERSISTENT": pe, "PINGPONG": pp,
                          **({"SNAKE": True} if sn else {})})
         for bm, bn, st, hf, ws, pe, pp, sn in [
             # session 6
             (128, 128, 3, True, False, False, False, False),
             (128, 128, 3, True, True, False, False, False),
             (128, 128, 3, True, True, True, False, False),
             (128, 128, 3, True, True, False, True, False),
             (128, 128, 3, True, True, True, True, False),
             # session 7: the benchmark's best (HEAVY_FIRST off), and the snake tile order
             (128, 128, 3, False, True, True, False, False),
             (128, 128, 3, False, True, True, False, True),
             (128, 128, 3, True, True, True, False, True)]]
# The last two have more tiles than an H100/H200 has SMs (persistent programs take several).
CHECK_SHAPES = [(1, 2, 67, 64), (2, 3, 200, 128), (1, 2, 129, 128), (1, 1, 1024, 128),
                (4, 40, 520, 64), (2, 70, 300, 128)]
RAMP_SHAPES = [(1, 2, 1000, 128), (2, 3, 2048, 64)]


def label(name, cfg):
    return name + " " + " ".join(f"{k}={v}" for k, v in cfg.items())


def run(name, cfg, q, k, v, causal, out):
    OP.structures[name](q, k, v, torch.tensor(causal), out=out, **cfg)
    return out


def ramp_inputs(shape, dtype, seed=1, amplitude=2.0):
    """randn q, k, v with scores rising along the keys (by about ``amplitude * sqrt(D)`` over
    the sequence): the row maxima keep growing block after block, so LAZY_RESCALE's threshold
    is crossed now and then, not only at the first block."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=g, device="cuda") for _ in range(3))
    S = shape[2]
    k = k + amplitude * torch.arange(S, device="cuda").view(1, 1, S, 1) / S
    return (q + 1.0).to(dtype), k.to(dtype), v.to(dtype)


def check(configs) -> list[dict]:
    rows = []
    for shape, kind in [(s, "randn") for s in CHECK_SHAPES] + [(s, "ramp") for s in RAMP_SHAPES]:
        for dtype in (torch.float16, torch.bfloat16):
            for causal in (True, False):
                if kind == "ramp":
                    q, k, v = ramp_inputs(shape, dtype)
                else:
                    g = torch.Generator(device="cuda").manual_seed(1)
                    q, k, v = (torch.randn(shape, generator=g, device="cuda").to(dtype)
                               for _ in range(3))
                truth = attention_float64(q, k, v, causal)
                ref = torch.nn.functional.scaled_dot_product_attention(q, k, v,
                                                                       is_causal=causal)
                ref_err = ((ref.double() - truth).norm() / truth.norm()).item()
                for name, cfg in configs:
                    out = torch.full_like(q, float("nan"))
                    try:
                        run(name, cfg, q, k, v, causal, out)
                        torch.cuda.synchronize()
                        err = ((out.double() - truth).norm() / truth.norm()).item()
                        worst = (out.double() - truth).abs().max().item()
                        ok = bool(torch.isfinite(out).all()) and err <= 2 * ref_err + 1e-4
                        rows.append(dict(config=label(name, cfg), shape=shape, inputs=kind,
                                         dtype=str(dtype), causal=causal, rel_err=err,
                                         sdpa_rel_err=ref_err, max_abs=worst, ok=ok))
                    except Exception as exc:  # noqa: BLE001 - a probe reports every failure
                        rows.append(dict(config=label(name, cfg), shape=shape, inputs=kind,
                                         dtype=str(dtype), causal=causal, ok=False,
                                         error=f"{type(exc).__name__}: {exc}"[:300]))
    return rows


def sdpa_variants():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    variants = [("sdpa (default dispatch)", None)]
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
        if hasattr(SDPBackend, name):
            variants.append((f"sdpa {name.lower()}", getattr(SDPBackend, name)))
    out = []
    for title, backend in variants:
        def fn(q, k, v, causal, backend=backend):
            if backend is None:
                return torch.nn.functional.scaled_dot_product_attention(q, k, v,
                                                                        is_causal=causal)
            with sdpa_kernel([backend]):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v,
                                                                        is_causal=causal)
        out.append((title, fn))
    return out


def speed(configs, shape, causal, dtype, rounds) -> list[dict]:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(shape, generator=g, device="cuda").to(dtype) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    B, H, S, D = shape
    flops = 4.0 * B * H * S * S * D / (2 if causal else 1)
    entries = []
    for title, fn in sdpa_variants():
        try:
            fn(q, k, v, causal)
            entries.append((title, lambda fn=fn: fn(q, k, v, causal)))
        except Exception as exc:  # noqa: BLE001
            print(f"{title}: not available ({type(exc).__name__})")
    for name, cfg in configs:
        out = torch.empty_like(q)
        try:
            run(name, cfg, q, k, v, causal, out)
            torch.cuda.synchronize()
            diff = (out.float() - ref.float()).abs().max().item()
            print(f"{label(name, cfg)}: max |out - sdpa| {diff:.2e}")
        except Exception as exc:  # noqa: BLE001
            print(f"{label(name, cfg)}: failed ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        entries.append((label(name, cfg),
                        lambda name=name, cfg=cfg, out=out: run(name, cfg, q, k, v, causal,
                                                                out)))
    times = {title: [] for title, _ in entries}
    for r in range(rounds):
        order = entries if r % 2 == 0 else entries[::-1]
        for title, fn in order:
            times[title].append(bench_cuda(fn)[0])
    rows = []
    for title, _ in entries:
        ms = statistics.median(times[title])
        rows.append(dict(what=title, ms=ms, rounds=times[title],
                         tflops=flops / (ms * 1e-3) / 1e12))
    return rows, entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shape", default="8x32x4096x128")
    ap.add_argument("--causal", type=int, default=1)
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--power-seconds", type=float, default=0.0,
                    help="then run each kernel this long back to back, sampling clock and power")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="keep only the configs whose label contains TEXT (repeatable: any); "
                         "SDPA is always timed")
    args = ap.parse_args()
    configs = [c for c in [TMA_BEST, *WGMMA]
               if not args.only or any(t in label(*c) for t in args.only)]
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    import triton
    result["triton"] = triton.__version__
    print(f"GPU: {result['gpu']} | torch {result['torch']} | triton {result['triton']}")
    if not args.skip_check:
        result["check"] = check(configs)
        bad = [r for r in result["check"] if not r["ok"]]
        print(f"correctness: {len(result['check']) - len(bad)} of {len(result['check'])} ok")
        for r in bad[:20]:
            print("  FAIL", r)
    shape = tuple(int(x) for x in args.shape.split("x"))
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    result["speed"], entries = speed(configs, shape, bool(args.causal), dtype, args.rounds)
    print(f"\n{args.shape} causal={args.causal} {args.dtype}, median of {args.rounds} rounds")
    print("| what | ms | TFLOP/s | rounds |\n| --- | --- | --- | --- |")
    for r in result["speed"]:
        rounds = " ".join(f"{t:.3f}" for t in r["rounds"])
        print(f"| {r['what']} | {r['ms']:.4f} | {r['tflops']:.0f} | {rounds} |")
    if args.power_seconds:
        result["power"] = power(entries, args.power_seconds)
        print(f"\neach back to back for {args.power_seconds:g} s (nvidia-smi every 50 ms)")
        print("| what | ms per call | SM MHz | W |\n| --- | --- | --- | --- |")
        for r in result["power"]:
            print(f"| {r['what']} | {r['ms_per_call']:.4f} | {r['sm_mhz']:.0f} | "
                  f"{r['watts']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
