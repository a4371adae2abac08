"""``run --problem FILE``: generate, tune, write and check an answer to a problem file.

The offline structures (:mod:`eggsearch.problems.generate`) become one structure, ``fused``,
whose launcher is the generated module's ``launch``; the op is the problem itself
(:class:`eggsearch.problems.op.ProblemOp`). The study, the isolated worker, its verification
and the timing are the ones ``run --op`` uses. At the end the best configuration is written into
``ModelNew.py`` in the run directory, which :func:`eggsearch.problems.check.check` then verifies
with the full protocol (fresh processes, anti-cheat checks).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from eggsearch.backends import BACKENDS, resolve_backend_name
from eggsearch.errors import UsageError
from eggsearch.hardware import load_hardware, spec_for_device
from eggsearch.ops.base import Problem
from eggsearch.plan import SearchPlan
from eggsearch.problems.generate import build
from eggsearch.problems.loader import validate_problem
from eggsearch.problems.op import ProblemOp
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.rundir import RunDir
from eggsearch.space import parse_structure_space
from eggsearch.structures import Structure
from eggsearch.summary import build_summary, redact
from eggsearch.tuner import SAMPLERS, Budget, enqueue_start, make_sampler, open_study, tune


def with_config(source: str, config: dict) -> str:
    """The answer module with its ``CONFIG`` line replaced."""
    return re.sub(r"^CONFIG = .*$", lambda _: f"CONFIG = {config!r}", source, count=1,
                  flags=re.M)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def study_problem(path: Path, backend_name: str, trials: int, *, sampler: str = "tpe",
                  seed: int = 0, out: Path | None = None, storage: str | None = None,
                  trial_timeout: float | None = None, timeout: float | None = None,
                  rules_dir: Path | None = None, on_trial=None) -> tuple[dict, Path]:
    """Tune the generated answer to ``path``; returns the summary and ``ModelNew.py``'s path."""
    t_start = time.monotonic()
    if sampler not in SAMPLERS:
        make_sampler(sampler, 0, 1)  # the one-line error
    interpreter = backend_name == "interpreter"
    module = validate_problem(path, small=interpreter)
    op = ProblemOp(path)
    sizes = tuple(module.sizes.values())
    problem = Problem(op.name, op.dims, sizes, op.dtype_name())
    rules = load_rules(rules_dir)
    specs = load_hardware(rules_dir / "hardware.yaml" if rules_dir else None)
    trial_timeout = trial_timeout or (300.0 if interpreter else 60.0)
    backend = BACKENDS[backend_name](trial_timeout=trial_timeout)
    try:
        device = backend.start()
        hw = spec_for_device(device, specs)
        env = hw.variables()
        gen = build(module, env, title=f"ModelNew for {Path(path).name}")
        gpu = "interpreter" if interpreter else _slug(hw.name)
        name = f"problem-{_slug(Path(path).stem)}-{problem.shape_key or 'fixed'}-{gpu}"
        run_dir = RunDir(out or Path("runs") / name).create()
        backend.worker.log_path = run_dir.worker_log
        module_path = run_dir.path / "structures" / "fused.py"
        module_path.parent.mkdir(exist_ok=True)
        module_path.write_text(gen.source)
        space_data = {**gen.space, "seeds": [gen.config] + gen.space["seeds"]}
        space = parse_structure_space(space_data, f"{path} (generated space)", set(env))
        structure = Structure(op.name, "fused", str(module_path), "launch", space, "offline")
        plan = SearchPlan([structure], rules, env, seed=seed)
        storage = storage or run_dir.storage_url
        settings = {"problem": str(Path(path).resolve()), "sizes": module.sizes,
                    "dtype": problem.dtype, "trials": trials, "timeout": timeout,
                    "sampler": sampler, "seed": seed, "storage": redact(storage),
                    "backend": backend_name, "trial_timeout": trial_timeout,
                    "structures": ["fused"], "groups": list(gen.groups),
                    "argv": sys.argv[1:]}
        run_dir.write_json("settings.json", settings)
        study = open_study(name, storage, make_sampler(sampler, seed, trials))
        enqueue_start(study, plan, sampler, trials)
        baseline = backend.baseline(problem, seed=seed * 1_000_003)
        roof = roofline(op, problem, hw)
        tune(study, plan, problem, backend, roof, Budget(trials, timeout), seed,
             on_trial=lambda rec: (run_dir.append_trial(rec), on_trial and on_trial(rec)))
        plan_info = {"structures": list(plan.plans), "skipped_infeasible": plan.skipped,
                     "feasible_configs": plan.size(),
                     "enumerated_exhaustively": plan.exhaustive()}
        summary = build_summary(op, problem, study, device, hw.name, backend_name, baseline,
                                roof, {**settings, "storage": storage},
                                time.monotonic() - t_start, plan_info)
    finally:
        backend.close()
    best = summary["best"]["config"] if summary["best"] else gen.config
    answer = run_dir.path / "ModelNew.py"
    answer.write_text(with_config(gen.source, best))
    summary.update(run_dir=str(run_dir.path), answer=str(answer), groups=list(gen.groups),
                   tuned=summary["best"] is not None)
    run_dir.write_json("summary.json", summary)
    return summary, answer


def tune_problem(path: Path, out_dir: Path, settings, trials: int) -> Path:
    """For ``bench-problems --tune-trials``: a study per problem in ``<out>/studies/<stem>``
    (``out_dir`` is ``<out>/answers``); the tuned answer is copied to
    ``out_dir/<problem file name>``."""
    backend = "interpreter" if settings.interpreter else "gpu"
    _, answer = study_problem(path, backend, trials, seed=settings.seed,
                              out=Path(out_dir).parent / "studies" / Path(path).stem)
    target = Path(out_dir) / Path(path).name
    target.write_text(answer.read_text())
    return target


def run_problem(args) -> dict:
    """The CLI's ``run --problem``: the study, then the protocol's check of ``ModelNew.py``."""
    from eggsearch.problems.check import CheckSettings, check

    if args.shape:
        raise UsageError("--shape does not apply to --problem (sizes come from the file; "
                         "SMALL on the interpreter)")
    backend_name = resolve_backend_name(args.backend)
    summary, answer = study_problem(
        args.problem, backend_name, args.trials, sampler=args.sampler, seed=args.seed,
        out=args.out, storage=args.storage, trial_timeout=args.trial_timeout,
        timeout=args.timeout, rules_dir=args.rules)
    interpreter = backend_name == "interpreter"
    result = check(args.problem, answer, CheckSettings(
        device="cpu" if interpreter else "cuda", small=interpreter, seed=args.seed,
        compile=not interpreter, timeout_s=1800.0 if interpreter else 600.0,
        log_path=Path(summary["run_dir"]) / "worker.log"))
    summary["check"] = result.to_dict()
    RunDir(Path(summary["run_dir"])).write_json("summary.json", summary)
    return summary
