"""GPU benchmark of the problem set: generated answers, checked and timed, and the field's scores.

Usage (on the GPU machine, from the repo root):

    python experiments/problems_benchmark.py --out $OUT/problems [--ids 1 2 3] [--no-compile]
        [--tune-trials N] [--dir tests/problems/set]

For every problem file (full sizes, fp32, tolerance 1e-4, no LLM) it writes the offline
answer, verifies it with the anti-cheat protocol, times it against PyTorch eager and
torch.compile (each in its own worker process), and prints per-problem rows and the fast_p /
geometric-mean table (also in ``<out>/table.md`` and ``<out>/summary.json``). Results are
appended to ``<out>/results.jsonl`` as each problem finishes and reused by a re-run with the same
settings, problem files and eggsearch code, so the set can be run in several shorter commands
(``--ids``, or the same command again after a timeout) into one ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eggsearch.problems.bench import bench_problems, format_bench  # noqa: E402
from eggsearch.problems.check import CheckSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dir", type=Path, default=ROOT / "tests" / "problems" / "set")
    parser.add_argument("--ids", nargs="+", default=None)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--tune-trials", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="SMALL sizes (a quick smoke run)")
    args = parser.parse_args()

    import torch
    import triton

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures GPU times")
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}, triton "
          f"{triton.__version__}", flush=True)
    settings = CheckSettings(device="cuda", small=args.small, compile=not args.no_compile)
    t0 = time.monotonic()
    report = bench_problems(args.dir, settings, ids=args.ids, out=args.out,
                            tune_trials=args.tune_trials)
    print(format_bench(report))
    print(f"\nwall time {time.monotonic() - t0:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
