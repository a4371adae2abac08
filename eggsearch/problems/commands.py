"""The problem commands of the CLI: ``check`` and ``bench-problems`` (parsers and handlers)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eggsearch.errors import UsageError

EXIT_OK, EXIT_FAILED = 0, 1


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", help="auto (default), gpu or interpreter")
    p.add_argument("--size", default="auto", choices=("auto", "small", "full"),
                   help="problem sizes: full (the file's), small (its SMALL dict); auto: "
                        "full on a GPU, small on the interpreter")
    p.add_argument("--trials", type=int, default=5,
                   help="correctness trials on fresh inputs (at least 5)")
    p.add_argument("--seed", type=int, default=0, help="input seed")
    p.add_argument("--no-compile", action="store_true", help="do not time torch.compile")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per worker request (default 600; 1800 on the interpreter)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_problem_commands(sub) -> None:
    """Register ``check`` and ``bench-problems`` on the CLI's subparsers."""
    chk = sub.add_parser("check", help="verify and time an answer (ModelNew) to a problem file")
    chk.add_argument("--problem", type=Path, required=True, help="problem file (class Model)")
    chk.add_argument("--solution", type=Path, required=True,
                     help="answer file (class ModelNew)")
    add_common(chk)
    chk.set_defaults(func=cmd_check)

    bench = sub.add_parser("bench-problems",
                           help="generate, verify and time answers for a directory of problems")
    bench.add_argument("directory", type=Path, help="directory of problem files")
    bench.add_argument("--ids", nargs="+", default=None,
                       help="only these problems (the number a file name starts with, or its "
                            "stem)")
    bench.add_argument("--solutions", type=Path,
                       help="check the answers in this directory (same file names) instead of "
                            "generating them")
    bench.add_argument("--out", type=Path, help="results directory (default "
                       "runs/bench-<directory name>-<device>)")
    bench.add_argument("--tune-trials", type=int, default=0,
                       help="tune each generated answer with a study of this many trials "
                            "(default 0: the expert seed config)")
    add_common(bench)
    bench.set_defaults(func=cmd_bench)


def settings_from(args):
    from eggsearch.backends import resolve_backend_name
    from eggsearch.problems.check import CheckSettings

    backend = resolve_backend_name(args.backend)
    interpreter = backend == "interpreter"
    if args.trials < 5:
        raise UsageError("--trials must be at least 5 (the protocol's minimum)")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    small = interpreter if args.size == "auto" else args.size == "small"
    return CheckSettings(device="cpu" if interpreter else "cuda", small=small,
                         trials=args.trials, seed=args.seed, compile=not args.no_compile,
                         timeout_s=args.timeout or (1800.0 if interpreter else 600.0))


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.1f} us" if v < 1 else f"{v:.3f} ms"


def format_check(r) -> str:
    v = r.verdict
    if r.correct:
        second = v.get("second_shape")
        extra = (f", incl. a second shape {' '.join(f'{k}={x}' for k, x in second.items())}"
                 if second else ", no second shape (the problem fixes its shapes)")
        verdict = (f"correct ({v['trials']} trials{extra}; max abs err {v['max_abs_err']:.2e},"
                   f" normwise rel err {v['rel_err']:.2e})")
    else:
        label = {"cheat": "rejected as a cheat"}.get(r.status, r.status)
        verdict = f"{label}: {r.reason}"
    rows = [("verdict", verdict)]
    if r.correct:
        word = "ratio, interpreter times" if r.interpreter else "speedup"
        rows.append(("answer", _ms(r.answer_ms)))
        rows.append(("eager", _ms(r.eager_ms) + (f"  ({word} {r.speedup:.2f}x)"
                                                 if r.speedup else "")))
        comp = _ms(r.compile_ms) if r.compile_ms else f"n/a ({r.compile_error or 'failed'})"
        if r.speedup_compile:
            comp += f"  ({word} {r.speedup_compile:.2f}x)"
        rows.append(("torch.compile", comp))
        rows.append(("times", "CPU interpreter wall clock: not GPU performance"
                     if r.interpreter
                     else f"{r.device}: CUDA events + whole-device sync, L2 flushed"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {val}" for k, val in rows)


def cmd_check(args) -> int:
    from eggsearch.problems.check import check

    result = check(args.problem, args.solution, settings_from(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_check(result))
    return EXIT_OK if result.correct else EXIT_FAILED


def cmd_bench(args) -> int:
    from eggsearch.problems.bench import bench_problems, format_bench

    report = bench_problems(args.directory, settings_from(args), ids=args.ids,
                            solutions=args.solutions, out=args.out,
                            tune_trials=args.tune_trials)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_bench(report))
    return EXIT_OK


def cmd_run_problem(args) -> int:
    """``run --problem FILE``: exit 0 only when the tuned answer passes the protocol."""
    from eggsearch.problems.run import run_problem
    from eggsearch.summary import format_table

    if args.structure or getattr(args, "proposer", "library") != "library":
        raise UsageError("--structure and --proposer do not apply to --problem (its one "
                         "structure, fused, is generated from the file)")
    summary = run_problem(args)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    else:
        from eggsearch.problems.check import CheckResult

        print(format_table(summary))
        print(f"fused groups: {'; '.join(summary['groups'])}")
        print(format_check(CheckResult(**{k: v for k, v in summary["check"].items()
                                          if k not in ("speedup", "speedup_compile")})))
        print(f"answer: {summary['answer']}")
        print(f"records: {summary['run_dir']}")
    return EXIT_OK if summary["check"]["status"] == "correct" else EXIT_FAILED
