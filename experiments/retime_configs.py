"""Re-time a sweep's best configs side by side, to tell a real difference from thermal noise.

Usage (on the GPU machine, from the repo root):

    python experiments/retime_configs.py SWEEP_DIR/measurements.jsonl [--top 6] [--rounds 5]

Takes the ``top`` fastest configs recorded in a sweep's ``measurements.jsonl`` (matmul fp16
4096^3 only), adds PyTorch, and times them round-robin (each round visits every candidate once,
in a rotated order) with eggsearch's timer, so all see the same clocks. Prints each one's first
recorded time and the median and spread of its rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eggsearch.ops import matmul as mm  # noqa: E402
from eggsearch.space import parse_config_key  # noqa: E402
from eggsearch.timing import bench_cuda  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measurements", type=Path)
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    rows = [json.loads(line) for line in args.measurements.read_text().splitlines()[1:]]
    ok = sorted((r for r in rows if r["measurement"]["status"] == "ok"),
                key=lambda r: r["measurement"]["time_ms"])[: args.top]
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16, generator=gen) / 8
    b = torch.randn(4096, 4096, device="cuda", dtype=torch.float16, generator=gen) / 8
    out = torch.empty_like(a)
    cands = {"pytorch": (None, lambda: torch.matmul(a, b))}
    for r in ok:
        _, config = parse_config_key(r["key"])
        launch = getattr(mm, f"launch_{r['structure']}")
        cands[r["key"]] = (r["measurement"]["time_ms"],
                           (lambda f, c: lambda: f(a, b, out=out, **c))(launch, config))
    times = {k: [] for k in cands}
    keys = list(cands)
    for i in range(args.rounds):
        for k in keys[i % len(keys):] + keys[: i % len(keys)]:
            times[k].append(bench_cuda(cands[k][1], rep_ms=50)[0])
    print(f"{torch.cuda.get_device_name(0)}: {args.rounds} round-robin rounds, ms")
    print(f"{'recorded':>9} {'median':>8} {'min':>8} {'max':>8}  config")
    for k in sorted(keys, key=lambda k: statistics.median(times[k])):
        rec = "-" if cands[k][0] is None else f"{cands[k][0]:.4f}"
        print(f"{rec:>9} {statistics.median(times[k]):8.4f} "
              f"{min(times[k]):8.4f} {max(times[k]):8.4f}  {k[:150]}")


if __name__ == "__main__":
    main()
