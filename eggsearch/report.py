"""``eggsearch report RUN_DIR``: an HTML page with PNG plots of a run, or of many.

``RUN_DIR`` is a run directory or any directory above run directories (a multi-shape run,
``runs/``); a sweep directory (``sweep.csv``) gets its quality-against-budget plot. The report
goes to ``RUN_DIR/report/`` (or ``--out``): ``index.html`` and the PNGs it names by relative
path, so the folder can be copied or served as is.

Across runs: a table of results, speedup against PyTorch per op and shape, a roofline chart
(achieved against the bound of the GPU's datasheet rates), and trials by status. Per run: the
optimization history (every trial's time by structure, failures marked), the best so far
against trials, and parameter importance (Optuna's default evaluator, over correct trials).
Interpreter runs get no speedup or roofline: their times are CPU wall clock.

Matplotlib (Agg backend) draws the PNGs.
"""

from __future__ import annotations

import html
import math
import warnings
from collections import Counter
from pathlib import Path

from eggsearch.errors import UsageError
from eggsearch.export.runs import RunRecord, find_runs
from eggsearch.runner import _slug

STATUS_COLORS = {"ok": "tab:green", "duplicate": "tab:olive", "pruned": "tab:gray",
                 "compile_error": "tab:purple", "runtime_fault": "tab:red",
                 "timeout": "tab:orange", "incorrect": "tab:brown", "suspicious": "tab:pink"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("report needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def _label(s: dict) -> str:
    return f"{s['op']} {s['shape']} {s['dtype']}"


# ---- per run ---------------------------------------------------------------------------------
def _trials(record: RunRecord) -> list[dict]:
    from eggsearch.tuner import finished

    study = record.load_study()
    return [{"number": t.number, "value": t.value, "status": t.user_attrs.get("status", "?"),
             "structure": t.user_attrs.get("structure", "?"), "trial": t}
            for t in finished(study)]


def plot_history(trials: list[dict], path: Path, title: str) -> str:
    """Every measured trial's time by structure; failed trials as red crosses at the top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ok = [t for t in trials if t["status"] == "ok"]
    for structure in sorted({t["structure"] for t in ok}):
        pts = [t for t in ok if t["structure"] == structure]
        ax.scatter([t["number"] for t in pts], [t["value"] for t in pts], s=18, label=structure)
    failed = [t for t in trials if t["status"] not in ("ok", "duplicate", "pruned")]
    if ok and failed:
        top = max(t["value"] for t in ok) * 1.3
        ax.scatter([t["number"] for t in failed], [top] * len(failed), marker="x", c="tab:red",
                   label="failed (shown at top)")
    if ok:
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("time (ms)")
    ax.set_title(title, fontsize=9)
    if ok or failed:
        ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_best_so_far(trials: list[dict], path: Path, title: str) -> str:
    """The best correct time after each trial (a step line)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs, ys, best = [], [], math.inf
    for t in sorted(trials, key=lambda t: t["number"]):
        if t["status"] == "ok" and t["value"] is not None:
            best = min(best, t["value"])
        if math.isfinite(best):
            xs.append(t["number"] + 1)
            ys.append(best)
    ax.step(xs, ys, where="post")
    ax.set_xlabel("trials")
    ax.set_ylabel("best time so far (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_importance(trials: list[dict], path: Path, title: str) -> str | None:
    """Parameter importance over the correct trials; None when there are too few."""
    import optuna

    ok = [t["trial"] for t in trials if t["status"] == "ok"]
    if len(ok) < 3:
        return None
    study = optuna.create_study(direction="minimize")
    study.add_trials(ok)
    try:
        with warnings.catch_warnings():  # "few trials in some regimes": true, and said below
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return None
    if not importances:
        return None
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.3 * len(names)))
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel(f"importance (normalized; {len(ok)} correct trials: a rough guide when few)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


# ---- across runs -----------------------------------------------------------------------------
def plot_speedup(summaries: list[dict], path: Path) -> str | None:
    """Speedup of the best kernel over PyTorch eager, per op and shape (GPU runs only)."""
    runs = [s for s in summaries if s.get("speedup")]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.35 * len(runs)))
    labels = [_label(s) for s in runs]
    ax.barh(labels, [s["speedup"] for s in runs],
            color=["tab:green" if s["speedup"] >= 1 else "tab:red" for s in runs])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("speedup over PyTorch eager (x)")
    return _save(fig, path)


def _roof(summary: dict) -> tuple[float, float] | None:
    """(peak FLOP/s, bytes/s) that bound this run, from its hardware spec."""
    from eggsearch.hardware import load_hardware
    from eggsearch.ops import get_op
    from eggsearch.roofline import compute_rate

    hw = load_hardware().get(summary.get("hardware_spec"))
    if hw is None or hw.peak_bandwidth is None:
        return None
    op = get_op(summary["op"])
    problem = op.problem(summary["shape"], summary["dtype"], bool(summary.get("allow_tf32")),
                         options=summary.get("options") or {})
    rate = compute_rate(op, problem, hw)
    return (rate, hw.peak_bandwidth) if rate else None


def plot_roofline(summaries: list[dict], path: Path) -> str | None:
    """Achieved FLOP/s against arithmetic intensity, under each GPU's roof (GPU runs only)."""
    runs = [(s, _roof(s)) for s in summaries if s.get("backend") == "gpu" and s.get("best")]
    runs = [(s, roof) for s, roof in runs if roof is not None]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    intensities = [s["roofline"]["flops"] / s["roofline"]["min_bytes"] for s, _ in runs]
    lo, hi = min(intensities) / 4, max(intensities) * 4
    for rate, bw in sorted({roof for _, roof in runs}):
        xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
        ax.plot(xs, [min(rate, bw * x) / 1e12 for x in xs], color="black", linewidth=1)
        ax.annotate(f"{rate / 1e12:.0f} TFLOP/s, {bw / 1e12:.2f} TB/s", (hi, rate / 1e12),
                    fontsize=7, ha="right", va="bottom")
    for (s, _), x in zip(runs, intensities):
        flops = s["roofline"]["flops"]
        ax.scatter([x], [flops / (s["best"]["time_ms"] * 1e-3) / 1e12], label=_label(s))
        if s["pytorch"].get("time_ms"):
            ax.scatter([x], [flops / (s["pytorch"]["time_ms"] * 1e-3) / 1e12],
                       facecolors="none", edgecolors="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / minimum byte)")
    ax.set_ylabel("TFLOP/s (filled: best kernel, hollow: PyTorch)")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3, which="both")
    return _save(fig, path)


def plot_status(names: list[str], statuses: list[Counter], path: Path) -> str:
    """Trials by status, a stacked bar per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.35 * len(names)))
    left = [0] * len(names)
    for status in sorted({k for c in statuses for k in c}):
        counts = [c.get(status, 0) for c in statuses]
        ax.barh(names, counts, left=left, label=status, color=STATUS_COLORS.get(status))
        left = [a + b for a, b in zip(left, counts)]
    ax.set_xlabel("trials")
    ax.legend(fontsize=7, ncol=4)
    return _save(fig, path)


def plot_sweep(csv_path: Path, png_path: Path, title: str) -> Path:
    """Quality against budget per sampler (mean line, min-max band), from ``sweep.csv``."""
    from eggsearch.sweep import quality_table, read_rows

    plt = _pyplot()
    table = quality_table(read_rows(csv_path))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for sampler, by_budget in table.items():
        budgets = sorted(by_budget, key=int)
        xs = [int(b) for b in budgets]
        ax.plot(xs, [by_budget[b]["mean"] for b in budgets], marker="o", label=sampler)
        ax.fill_between(xs, [by_budget[b]["min"] for b in budgets],
                        [by_budget[b]["max"] for b in budgets], alpha=0.2)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="95% of best known")
    ax.set_xscale("log", base=2)
    budgets = sorted({int(b) for by_budget in table.values() for b in by_budget})
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("trials (budget of a fresh study)")
    ax.set_ylabel("best known time / best found time")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(True, alpha=0.3)
    _save(fig, png_path)
    return png_path


# ---- the page --------------------------------------------------------------------------------
def _fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.4g} ms"


def _row(name: str, s: dict) -> list[str]:
    best, pt, roof = s.get("best") or {}, s.get("pytorch") or {}, s.get("roofline") or {}
    counts = ", ".join(f"{k} {v}" for k, v in s["trials"]["by_status"].items())
    return [name, _label(s), f"{s['device'].get('name')} ({s['backend']})",
            best.get("structure", "none found"),
            " ".join(f"{k}={v}" for k, v in (best.get("config") or {}).items()),
            _fmt_ms(best.get("time_ms")), _fmt_ms(pt.get("time_ms")),
            f"{s['speedup']:.2f}x" if s.get("speedup") else "-",
            f"{100 * roof['fraction']:.0f}%" if roof.get("fraction") else "-",
            f"{s['trials']['total']} ({counts})"]


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _img(name: str | None, missing: str) -> str:
    if name is None:
        return f"<p class='note'>{html.escape(missing)}</p>"
    return f"<img src='{html.escape(name)}' alt='{html.escape(name)}'>"


def build_report(run_dir: Path, out: Path | None = None, storage: str | None = None) -> Path:
    """Write the report of ``run_dir`` and return the path of its ``index.html``.

    Raises:
        UsageError: ``run_dir`` does not exist, holds neither run directories nor a sweep, a
            study cannot be opened, or matplotlib is missing. Nothing is written then.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    sweep_csv = run_dir / "sweep.csv"
    records = find_runs([run_dir], storage) if not sweep_csv.is_file() else []
    _pyplot()
    runs = [(r, _trials(r)) for r in records]  # every study opens before anything is written
    out = Path(out or run_dir / "report")
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>eggsearch report: {html.escape(str(run_dir))}</h1>"]
    if sweep_csv.is_file():
        png = plot_sweep(sweep_csv, out / "sweep.png", f"budget sweep: {run_dir.name}")
        parts += ["<h2>Budget sweep</h2>", _img(png.name, "")]
    if runs:
        parts += _runs_section(run_dir, runs, out)
    page = out / "index.html"
    page.write_text(_PAGE.format(title=html.escape(f"eggsearch report: {run_dir.name}"),
                                 body="\n".join(parts)))
    return page


def _runs_section(run_dir: Path, runs: list[tuple[RunRecord, list[dict]]], out: Path) -> list:
    names = [str(r.path.relative_to(run_dir)) if r.path != run_dir else r.path.name
             for r, _ in runs]
    summaries = [r.summary for r, _ in runs]
    parts = ["<h2>Results</h2>", _table(
        ["run", "problem", "device", "best", "config", "time", "PyTorch", "speedup",
         "roofline", "trials"], [_row(n, s) for n, s in zip(names, summaries)])]
    if any(s["backend"] != "gpu" for s in summaries):
        parts.append("<p class='note'>Interpreter runs: times are CPU wall clock, not GPU "
                     "performance; no speedup or roofline is claimed for them.</p>")
    parts += ["<h2>Speedup over PyTorch</h2>",
              _img(plot_speedup(summaries, out / "speedup.png"), "no GPU run to compare"),
              "<h2>Roofline</h2>",
              _img(plot_roofline(summaries, out / "roofline.png"),
                   "no GPU run on a GPU with known peak rates"),
              "<h2>Trials by status</h2>",
              _img(plot_status(names, [Counter(t["status"] for t in trials)
                                       for _, trials in runs], out / "status.png"), "")]
    for name, (record, trials) in zip(names, runs):
        slug, title = _slug(name) or "run", f"{name}: {_label(record.summary)}"
        parts += [f"<h2>{html.escape(title)}</h2>",
                  _img(plot_history(trials, out / f"{slug}-history.png", title), ""),
                  _img(plot_best_so_far(trials, out / f"{slug}-best.png", title), ""),
                  _img(plot_importance(trials, out / f"{slug}-importance.png", title),
                       "parameter importance: fewer than 3 correct trials")]
    return parts


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 75em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
.note {{ color: #666; font-style: italic; }}
</style></head>
<body>
{body}
</body></html>
"""
