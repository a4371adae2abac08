"""One ``run``: check the input, start the backend, propose, plan, tune, summarize.

Everything that can be checked without measuring (op, shape, dtype, YAML files, constraints)
is checked before the study or the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from eggsearch.backends import BACKENDS, resolve_backend_name
from eggsearch.errors import UsageError
from eggsearch.hardware import load_hardware, spec_for_device
from eggsearch.ops import get_op
from eggsearch.plan import SearchPlan
from eggsearch.proposers import LibraryProposer
from eggsearch.proposers.library import load_op_spaces
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.rundir import RunDir
from eggsearch.summary import build_summary
from eggsearch.tuner import (
    SAMPLERS,
    Budget,
    enqueue_start,
    finished,
    make_sampler,
    open_study,
    tune,
)


def parse_options(items: list[str]) -> dict[str, str]:
    """``["causal=0", ...]`` from ``--option``; a malformed item is a :class:`UsageError`."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--option '{item}': expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def run(args) -> dict:
    t_start = time.monotonic()
    op = get_op(args.op)
    if args.sampler not in SAMPLERS:
        make_sampler(args.sampler, 0, 1)  # raises the one-line error
    backend_name = resolve_backend_name(args.backend)
    interpreter = backend_name == "interpreter"
    problem = op.problem(args.shape, args.dtype, args.allow_tf32, interpreter=interpreter,
                         options=parse_options(getattr(args, "option", [])))
    rules = load_rules(args.rules)
    specs = load_hardware(args.rules / "hardware.yaml" if args.rules else None)
    load_op_spaces(op, problem, args.search_spaces)  # schema errors before anything starts

    timeout = args.trial_timeout or (300.0 if interpreter else 60.0)
    backend = BACKENDS[backend_name](trial_timeout=timeout)
    try:
        device = backend.start()
        hw = spec_for_device(device, specs)
        device = {**device, "hardware_spec": hw.name, "copy_bandwidth": hw.copy_bandwidth}
        env = {**op.variables(problem), **hw.variables()}
        proposer = LibraryProposer(rules, args.search_spaces, only=args.structure)
        structures = proposer.propose(op, problem, env)
        plan = SearchPlan(structures, rules, env, seed=args.seed)

        gpu_name = "interpreter" if interpreter else _slug(hw.name)
        study_name = f"{problem.key}-{gpu_name}"
        run_dir = RunDir(args.out or Path("runs") / study_name).create()
        backend.worker.log_path = run_dir.worker_log
        storage = args.storage or run_dir.storage_url
        settings = {"op": op.name, "shape": problem.shape_key, "dtype": problem.dtype,
                    "allow_tf32": problem.allow_tf32, "options": dict(problem.options),
                    "trials": args.trials,
                    "timeout": args.timeout, "sampler": args.sampler, "seed": args.seed,
                    "storage": storage, "backend": backend_name, "trial_timeout": timeout,
                    "structures": [s.name for s in structures],
                    "argv": sys.argv[1:]}
        from eggsearch.summary import redact

        run_dir.write_json("settings.json", {**settings, "storage": redact(storage)})
        study = open_study(study_name, storage,
                           make_sampler(args.sampler, args.seed, args.trials))
        enqueue_start(study, plan, args.sampler, args.trials)

        baseline = backend.baseline(problem, seed=args.seed * 1_000_003)
        roof = roofline(op, problem, hw)
        progress = _progress(args.trials, len(finished(study)))
        try:
            tune(study, plan, problem, backend, roof, Budget(args.trials, args.timeout),
                 args.seed, on_trial=lambda rec: (run_dir.append_trial(rec), progress(rec)))
        finally:
            progress(None)
        plan_info = {"structures": list(plan.plans), "skipped_infeasible": plan.skipped,
                     "feasible_configs": plan.size(), "enumerated_exhaustively":
                     plan.exhaustive()}
        summary = build_summary(op, problem, study, device, hw.name, backend_name, baseline,
                                roof, settings, time.monotonic() - t_start, plan_info)
        summary["run_dir"] = str(run_dir.path)
        run_dir.write_json("summary.json", summary)
        return summary
    finally:
        backend.close()


def _progress(total: int, initial: int):
    """A progress bar on stderr; called with each trial record, then with None to close."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=min(initial, total), unit="trial", file=sys.stderr,
               dynamic_ncols=True, leave=False)
    best = [float("inf")]

    def update(record: dict | None) -> None:
        if record is None:
            bar.close()
            return
        if record.get("status") == "ok" and record.get("value_ms") is not None:
            best[0] = min(best[0], record["value_ms"])
        bar.set_postfix_str(f"{record['structure']} {record['status']}"
                            + (f" best {best[0]:.4g} ms" if best[0] < float("inf") else ""))
        bar.update(1)

    return update
