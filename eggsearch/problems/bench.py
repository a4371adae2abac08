"""``bench-problems``: answers for a directory of problems, each checked, and the field's scores.

fast_p is the share of *all* problems whose answer is correct and more than ``p`` times faster
than PyTorch eager (p = 0 is the share correct); failures, crashes and problems without an answer
stay in the denominator. The geometric-mean speedup is taken over the correct answers, and again
with every failure counted as 1.0x (a user falls back to eager). The same scores against
``torch.compile`` use the problems where it worked.

The results directory keeps ``results.jsonl`` (one line per problem, written as each finishes),
``answers/`` (generated answers), ``summary.json`` and ``table.md``. A re-run reuses a line only
when nothing it depends on changed: the settings, the problem file (and the given answer, with
``--solutions``), and the code that generates, verifies and times answers (every ``.py`` file of
``eggsearch/problems/`` and ``eggsearch/verify.py``); anything else is measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import asdict
from pathlib import Path

from eggsearch.errors import UsageError
from eggsearch.problems.check import CheckResult, CheckSettings, check
from eggsearch.problems.loader import one_line
from eggsearch.rundir import write_json_atomic

log = logging.getLogger(__name__)
P_VALUES = (0.0, 1.0, 1.5, 2.0)


def problem_files(directory: Path, ids: list[str] | None = None) -> list[Path]:
    """Problem files in ``directory`` (``*.py`` not starting with ``_`` or ``test_``), sorted by
    their leading number; ``ids`` picks by that number or by stem."""
    if not Path(directory).is_dir():
        raise UsageError(f"{directory}: not a directory")
    files = [p for p in Path(directory).glob("*.py")
             if not p.name.startswith(("_", "test_"))]
    files.sort(key=lambda p: (_number(p) if _number(p) is not None else math.inf, p.name))
    if ids:
        missing = [i for i in ids if not any(_matches(p, i) for p in files)]
        if missing:
            raise UsageError(f"no problem with id {missing[0]} in {directory}")
        files = [p for p in files if any(_matches(p, i) for i in ids)]
    if not files:
        raise UsageError(f"{directory}: no problem files (*.py)")
    return files


def _matches(p: Path, ident: str) -> bool:
    return p.stem == ident or (ident.isdigit() and _number(p) == int(ident))


def _number(p: Path) -> int | None:
    m = re.match(r"(\d+)", p.stem)
    return int(m.group(1)) if m else None


def fast_p(speedups: list[float | None], p: float) -> float:
    """Share of all entries that are correct (not None) with speedup > p."""
    if not speedups:
        return 0.0
    return sum(1 for s in speedups if s is not None and s > p) / len(speedups)


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def scores(rows: list[dict]) -> dict:
    eager = [r.get("speedup") for r in rows]
    with_compile = [r for r in rows if r.get("compile_ms")]
    comp = [r.get("speedup_compile") for r in with_compile]
    return {
        "problems": len(rows),
        "correct": sum(1 for r in rows if r["status"] == "correct"),
        "by_status": {s: sum(1 for r in rows if r["status"] == s)
                      for s in sorted({r["status"] for r in rows})},
        "fast_p": {f"{p:g}": fast_p(eager, p) for p in P_VALUES},
        "geomean_speedup": geomean([s for s in eager if s]),
        "geomean_speedup_failures_as_1": geomean([s or 1.0 for s in eager]),
        "compile": {"problems": len(with_compile),
                    "fast_p": {f"{p:g}": fast_p(comp, p) for p in P_VALUES},
                    "geomean_speedup": geomean([s for s in comp if s])},
    }


def _settings_key(settings: CheckSettings, tune_trials: int, solutions: Path | None) -> str:
    data = {**asdict(settings), "log_path": None, "tune_trials": tune_trials,
            "solutions": str(solutions) if solutions else None, "code": _code_sha()}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _code_sha() -> str:
    """Hash of the code whose change can change a result (generator, verifier, timing)."""
    pkg = Path(__file__).resolve().parent
    files = sorted(pkg.glob("*.py")) + [pkg.parent / "verify.py"]
    h = hashlib.sha1()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def _inputs_sha(problem: Path, solutions: Path | None) -> str:
    """Hash of the problem file and, with ``--solutions``, of its answer file."""
    h = hashlib.sha1(problem.read_bytes())
    answer = Path(solutions) / problem.name if solutions is not None else None
    if answer is not None and answer.is_file():
        h.update(answer.read_bytes())
    return h.hexdigest()[:12]


def _previous(results: Path, key: str) -> dict[str, dict]:
    if not results.exists():
        return {}
    done = {}
    for line in results.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if row.get("settings_key") == key:
            done[row["problem_name"]] = row
    return done


def _one(problem: Path, settings: CheckSettings, solutions: Path | None, out: Path,
         tune_trials: int) -> dict:
    if solutions is not None:
        answer = Path(solutions) / problem.name
        if not answer.is_file():
            return {"status": "no_answer", "reason": f"no {answer}"}
    else:
        from eggsearch.problems.generate import generate_answer

        try:
            answer = generate_answer(problem, out / "answers", settings, tune_trials)
        except UsageError as exc:
            return {"status": "no_answer", "reason": str(exc)}
        except Exception as exc:  # a generator bug costs this problem, not the whole bench
            log.exception("generating an answer to %s failed", problem)
            return {"status": "no_answer", "reason": f"the generator failed: {one_line(exc)}"}
    try:
        result: CheckResult = check(problem, answer, settings)
    except UsageError as exc:
        return {"status": "error", "reason": str(exc), "solution": str(answer)}
    return result.to_dict()


def bench_problems(directory: Path, settings: CheckSettings, ids: list[str] | None = None,
                   solutions: Path | None = None, out: Path | None = None,
                   tune_trials: int = 0) -> dict:
    files = problem_files(directory, ids)
    if solutions is not None and not Path(solutions).is_dir():
        raise UsageError(f"--solutions {solutions}: not a directory")
    if tune_trials < 0:
        raise UsageError("--tune-trials must be at least 0")
    where = "interpreter" if settings.interpreter else "gpu"
    out = Path(out or Path("runs") / f"bench-{Path(directory).resolve().name}-{where}")
    out.mkdir(parents=True, exist_ok=True)
    settings = CheckSettings(**{**asdict(settings), "log_path": out / "worker.log"})
    key = _settings_key(settings, tune_trials, solutions)
    results = out / "results.jsonl"
    done = _previous(results, key)
    rows = []
    for problem in files:
        inputs_sha = _inputs_sha(problem, solutions)
        row = done.get(problem.stem)
        if row is None or row.get("inputs_sha") != inputs_sha:
            log.info("problem %s", problem.name)
            row = {"problem_name": problem.stem, "settings_key": key, "inputs_sha": inputs_sha,
                   **_one(problem, settings, solutions, out, tune_trials)}
            with open(results, "a") as f:
                f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        rows.append(row)
    report = {"directory": str(directory), "out": str(out), "interpreter": settings.interpreter,
              "timer": "interpreter-wallclock (CPU; not GPU performance)"
              if settings.interpreter else "cuda-events+device-sync, L2 flushed",
              "sizes": "small" if settings.small else "full",
              "scores": scores(rows), "results": rows}
    write_json_atomic(out / "summary.json", report)
    (out / "table.md").write_text(format_bench(report) + "\n")
    return report


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v else "-"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def format_bench(report: dict) -> str:
    """Per-problem rows, then the fast_p table (Markdown)."""
    s = report["scores"]
    lines = [f"problems: {report['directory']} ({report['sizes']} sizes); times: "
             f"{report['timer']}", "",
             "| problem | status | answer ms | eager ms | compile ms | vs eager | vs compile |"
             " reason |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["results"]:
        reason = (r.get("reason") or "").replace("|", "/")[:90]
        lines.append(f"| {r['problem_name']} | {r['status']} | {_ms(r.get('answer_ms'))} | "
                     f"{_ms(r.get('eager_ms'))} | {_ms(r.get('compile_ms'))} | "
                     f"{_x(r.get('speedup'))} | {_x(r.get('speedup_compile'))} | {reason} |")
    c = s["compile"]
    lines += ["", "| score | vs eager | vs torch.compile |", "| --- | --- | --- |",
              f"| problems | {s['problems']} | {c['problems']} (where it worked) |",
              f"| correct | {s['correct']} ({100 * s['correct'] / s['problems']:.0f}%) | |"]
    for p in P_VALUES:
        k = f"{p:g}"
        lines.append(f"| fast_{k} | {100 * s['fast_p'][k]:.0f}% | "
                     f"{100 * c['fast_p'][k]:.0f}% |")
    lines.append(f"| geomean speedup (correct answers) | {_x(s['geomean_speedup'])} | "
                 f"{_x(c['geomean_speedup'])} |")
    lines.append(f"| geomean speedup (failures as 1.0x) | "
                 f"{_x(s['geomean_speedup_failures_as_1'])} | |")
    if report["interpreter"]:
        lines.append("")
        lines.append("Interpreter times: ratios of CPU wall-clock times, not GPU speedups.")
    return "\n".join(lines)
