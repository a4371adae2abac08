"""Does an exported module run as fast as the kernels did during tuning? (GPU only.)

Usage (on the GPU machine, from the repo root, after ``run`` and ``export``):

    python experiments/export_check.py --export exported/matmul [--runs runs/matmul-...] \
        [--out results.json]

For each entry of the export tuned on this GPU and Triton version (only those whose run
directory is under ``--runs``, if given), a fresh Python process imports the exported module
and times ``<op>(*inputs, out=out)`` the way eggsearch times candidates
(``eggsearch.timing.bench_cuda``: warm-up, L2 flushed before each repetition, CUDA events,
median), on inputs made as during tuning. As a control it times the library's own launcher with
the same config in the same process, interleaved with the exported one (three rounds each; the
median of the rounds' medians is reported), so drift of the GPU between the tuning run and now
shows up apart from any cost of the export. Prints a table; ``--out`` keeps the full results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import importlib.util, json, statistics, sys
export_dir, op_name, entry = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location("exported", f"{export_dir}/{op_name}_kernels.py")
exported = sys.modules["exported"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exported)  # first: the export must not lean on eggsearch's imports
sys.path.insert(0, sys.argv[4])
import torch
from eggsearch.ops import get_op
from eggsearch.timing import bench_cuda
from eggsearch.verify import compare_all

op = get_op(op_name)
problem = op.problem(tuple(entry["shape"]), entry["dtype"], entry["allow_tf32"],
                     options=entry["options"])
inputs = op.make_inputs(problem, 0, "cuda")
out = op.empty_output(problem, "cuda")
run_exported = getattr(exported, op_name)
launcher = op.structures[entry["structure"]]
choice = exported.choose(*inputs, allow_tf32=entry["allow_tf32"], **entry["options"])
run_exported(*inputs, out=out, allow_tf32=entry["allow_tf32"], **entry["options"])
torch.cuda.synchronize()
truth = op.truth(*inputs)
check = compare_all(out if isinstance(out, tuple) else (out,),
                    truth if isinstance(truth, tuple) else (truth,), op.tolerance(problem))
rounds = {"exported": [], "library": []}
for _ in range(3):
    rounds["exported"].append(bench_cuda(lambda: run_exported(
        *inputs, out=out, allow_tf32=entry["allow_tf32"], **entry["options"]))[0])
    rounds["library"].append(bench_cuda(lambda: launcher(*inputs, out=out,
                                                         **entry["config"]))[0])
print(json.dumps({"how": choice.how, "structure": choice.structure, "correct": check.ok,
                  "rel_err": check.rel_err,
                  **{k: statistics.median(v) for k, v in rounds.items()}, "rounds": rounds}))
"""


def check_entry(export_dir: Path, table: dict, entry: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(export_dir), table["op"],
                        json.dumps(entry), str(ROOT)], capture_output=True, text=True, env=env,
                       timeout=600)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="the export directory")
    parser.add_argument("--runs", type=Path, action="append", default=[],
                        help="only entries tuned in run directories under this one")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    configs = sorted(args.export.glob("*_configs.json"))
    if not configs:
        raise SystemExit(f"export_check: no *_configs.json in {args.export}")
    table = json.loads(configs[0].read_text())

    import torch
    import triton

    gpu = torch.cuda.get_device_name()
    runs = [str(p.resolve()) for p in args.runs]
    entries = [e for e in table["entries"] if e["gpu"] == gpu and e["triton"] ==
               triton.__version__ and (not runs or any(e["run_dir"].startswith(r) for r in runs))]
    rows = []
    for e in entries:
        result = check_entry(args.export.resolve(), table, e)
        rows.append({"problem": e["problem_key"], "structure": e["structure"],
                     "tuned_ms": e["time_ms"], **result})
        print(f"{e['problem_key']}: {result}", file=sys.stderr, flush=True)
    header = ("problem", "structure", "dispatch", "correct", "tuned", "library now",
              "exported", "exported/tuned", "exported/library")
    lines = [header]
    for r in rows:
        if "error" in r:
            lines.append((r["problem"], r["structure"], "error: " + r["error"][:60], "", "", "",
                          "", "", ""))
            continue
        lines.append((r["problem"], r["structure"], r["how"], str(r["correct"]),
                      f"{r['tuned_ms'] * 1e3:.1f} us", f"{r['library'] * 1e3:.1f} us",
                      f"{r['exported'] * 1e3:.1f} us", f"{r['exported'] / r['tuned_ms']:.3f}",
                      f"{r['exported'] / r['library']:.3f}"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    print(f"{gpu}, Triton {triton.__version__}, torch {torch.__version__}; "
          f"{len(entries)} of {len(table['entries'])} entries tuned here")
    for row in lines:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"gpu": gpu, "triton": triton.__version__,
                                        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
