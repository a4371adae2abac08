"""Launch one configuration of one structure a few times, for a profiler to look at.

Nsight Compute (``ncu``) replays a kernel to read its hardware counters; this script only gives
it something to replay: inputs at the op's shape, ``--warmup`` launches (compilation, autotuning
of nothing), then ``--launches`` more. Under ncu, skip the warm-up ones, e.g.:

    ncu --set full -k regex:attention --launch-skip 2 --launch-count 1 -o $OUT/attn \\
        python experiments/profile_config.py --op attention --shape 8x32x4096x128 \\
        --option causal=1 --structure flash_wgmma --config '{"BLOCK_M": 128, ...}'

``--structure torch`` launches the op's PyTorch reference instead (cuBLAS, SDPA...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eggsearch.ops import get_op  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", required=True)
    ap.add_argument("--shape", default=None)
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a problem option, as `run --option` takes it (e.g. causal=1)")
    ap.add_argument("--structure", required=True)
    ap.add_argument("--config", default="{}", help="the structure's config, as JSON")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--launches", type=int, default=1)
    args = ap.parse_args()

    import torch

    op = get_op(args.op)
    options = dict(item.partition("=")[::2] for item in args.option)  # parsed as the CLI does
    problem = op.problem(args.shape, args.dtype, options=options or None)
    inputs = op.make_inputs(problem, 0, "cuda")
    out = op.empty_output(problem, "cuda")
    if args.structure == "torch":
        def launch():
            op.reference(*inputs)
    else:
        config = json.loads(args.config)
        launcher = op.structures[args.structure]

        def launch():
            launcher(*inputs, out=out, **config)
    for _ in range(args.warmup + args.launches):
        launch()
    torch.cuda.synchronize()
    print(f"{args.op} {problem.shape} {args.dtype} {args.structure}: "
          f"{args.warmup} + {args.launches} launches done")


if __name__ == "__main__":
    main()
