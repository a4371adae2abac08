"""Re-judge a run's recorded measurements under the current roofline (no GPU needed).

Usage: python experiments/rejudge.py RUN_DIR [RUN_DIR ...]

For runs recorded before a roofline fix: trials marked ``suspicious`` (faster than the bound
then in force) are judged again against today's bound from their own recorded times; nothing is
re-measured. Prints, per run, the best correct time, PyTorch's, the speedup and the % of the
roofline, with how many trials changed status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eggsearch.hardware import load_hardware  # noqa: E402
from eggsearch.ops import get_op  # noqa: E402
from eggsearch.roofline import roofline  # noqa: E402


def rejudge(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    op = get_op(summary["op"])
    problem = op.problem(summary["shape"], summary["dtype"], summary["allow_tf32"],
                         options={k: str(v) for k, v in summary.get("options", {}).items()})
    roof = roofline(op, problem, load_hardware()[summary["hardware_spec"]])
    ok, changed = [], 0
    for line in (run_dir / "trials.jsonl").read_text().splitlines():
        rec = json.loads(line)
        m = rec.get("measurement") or {}
        if rec["status"] in ("ok", "suspicious") and m.get("time_ms"):
            if roof.below_bound(m["time_ms"] * 1e-3):
                continue
            changed += rec["status"] == "suspicious"
            ok.append((m["time_ms"], rec["structure"], rec["config"]))
    torch_ms = summary["pytorch"]["time_ms"]
    if not ok:
        return f"{problem.key}: no correct trial within the bound ({changed} re-judged)"
    best_ms, structure, config = min(ok, key=lambda t: t[0])
    return (f"{problem.key}: best {structure} {best_ms:.4f} ms, PyTorch {torch_ms:.4f} ms, "
            f"speedup {torch_ms / best_ms:.2f}x, {100 * roof.bound_s / (best_ms * 1e-3):.1f}% "
            f"of the {roof.limiter} bound {roof.bound_s * 1e3:.3f} ms "
            f"({roof.flops / (best_ms * 1e-3) / 1e12:.0f} TFLOP/s); {changed} trials "
            f"re-judged from 'suspicious' to 'ok'; config {config}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(rejudge(Path(arg)))
