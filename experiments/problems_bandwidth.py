"""How far each memory-bound problem's answer and eager are from copy bandwidth (CPU only).

Usage:

    python experiments/problems_bandwidth.py RESULTS.jsonl [--copy-tbps 4.24] [--ids 03 05 ...]

Reads the times recorded by ``problems_benchmark.py`` (``results.jsonl``), counts each problem's
minimum bytes (its inputs and its outputs, built once on the CPU at full size) and prints both
sides' effective bandwidth and the most a kernel at copy bandwidth could gain over eager. Skips
problems whose main cost is arithmetic (matmuls, convolutions) unless named in ``--ids``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eggsearch.problems.loader import load_problem  # noqa: E402

MEMORY_BOUND = ("03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15", "17",
                "25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--copy-tbps", type=float, default=4.24,
                        help="measured copy bandwidth of the GPU the times come from")
    parser.add_argument("--ids", nargs="+", default=list(MEMORY_BOUND))
    args = parser.parse_args()
    import torch

    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    print("| problem | min bytes | eager TB/s | answer TB/s | answer / eager "
          "| at copy BW / eager |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        path = ROOT / "tests" / "problems" / "set" / Path(r["problem"]).name
        if not any(path.stem.startswith(i) for i in args.ids) or r["status"] != "correct":
            continue
        problem = load_problem(path)
        inputs = problem.inputs(0, "cpu")
        with torch.no_grad():
            out = problem.build(42, "cpu")(*inputs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        nbytes = sum(t.numel() * t.element_size() for t in [*inputs, *outs]
                     if isinstance(t, torch.Tensor))
        eager_s, answer_s = r["eager_ms"] * 1e-3, r["answer_ms"] * 1e-3
        print(f"| {path.stem} | {nbytes / 1e6:.0f} MB | {nbytes / eager_s / 1e12:.2f} | "
              f"{nbytes / answer_s / 1e12:.2f} | {eager_s / answer_s:.2f}x | "
              f"{args.copy_tbps * 1e12 * eager_s / nbytes:.2f}x |")


if __name__ == "__main__":
    main()
