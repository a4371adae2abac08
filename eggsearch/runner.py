"""One ``run``: check the input, start the backend, propose, plan, tune, summarize.

Everything that can be checked without measuring (op, shape, dtype, YAML files, constraints)
is checked before the study or the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import logging
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
from eggsearch.records import Status
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.rundir import RunDir
from eggsearch.summary import build_summary
from eggsearch.tuner import (
    SAMPLERS,
    Budget,
    best_trial,
    distinct_configs,
    enqueue_start,
    finished,
    make_sampler,
    ok_trials,
    open_study,
    tune,
)

log = logging.getLogger(__name__)


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
    confirm_rounds = getattr(args, "confirm_rounds", 6)
    if confirm_rounds < 0:
        raise UsageError("--confirm-rounds must not be negative")
    confirm_top = getattr(args, "confirm_top", 4)
    if confirm_top < 1:
        raise UsageError("--confirm-top must be at least 1")
    backend_name = resolve_backend_name(args.backend)
    interpreter = backend_name == "interpreter"
    problem = op.problem(args.shape, args.dtype, args.allow_tf32, interpreter=interpreter,
                         options=parse_options(getattr(args, "option", [])))
    rules = load_rules(args.rules)
    specs = load_hardware(args.rules / "hardware.yaml" if args.rules else None)
    load_op_spaces(op, problem, args.search_spaces)  # schema errors before anything starts
    mode = getattr(args, "proposer", "library")
    llm = _llm_session(args, mode)  # no endpoint: a one-line error, before anything starts
    saved = _saved_structures(args, op, problem)

    timeout = args.trial_timeout or (300.0 if interpreter else 60.0)
    backend = BACKENDS[backend_name](trial_timeout=timeout)
    try:
        device = backend.start()
        hw = spec_for_device(device, specs)
        device = {**device, "hardware_spec": hw.name, "copy_bandwidth": hw.copy_bandwidth}
        env = {**op.variables(problem), **hw.variables()}
        gpu_name = "interpreter" if interpreter else _slug(hw.name)
        study_name = f"{problem.key}-{gpu_name}"
        out = args.out or Path("runs") / study_name
        structures, plan, run_dir, baseline = _stage_one(
            args, mode, llm, saved, backend, rules, op, problem, env, hw.name, interpreter, out)
        run_dir = run_dir or RunDir(out).create()
        if saved:  # the run directory keeps a copy of every module its study imports
            from eggsearch.llm.store import copy_into

            copy_into(saved, run_dir.path / "structures")
        backend.worker.log_path = run_dir.worker_log
        storage = args.storage or run_dir.storage_url
        settings = {"op": op.name, "shape": problem.shape_key, "dtype": problem.dtype,
                    "allow_tf32": problem.allow_tf32, "options": dict(problem.options),
                    "trials": args.trials,
                    "timeout": args.timeout, "sampler": args.sampler, "seed": args.seed,
                    "storage": storage, "backend": backend_name, "trial_timeout": timeout,
                    "structures": [s.name for s in structures],
                    "proposer": mode, "structures_dir": _text(getattr(args, "structures", None)),
                    "llm": llm and llm.settings_record(),
                    "argv": sys.argv[1:]}
        from eggsearch.summary import redact

        run_dir.write_json("settings.json", {**settings, "storage": redact(storage)})
        study = open_study(study_name, storage,
                           make_sampler(args.sampler, args.seed, args.trials))
        if plan is not None:
            enqueue_start(study, plan, args.sampler, args.trials)

        baseline = baseline or backend.baseline(problem, seed=args.seed * 1_000_003)
        roof = roofline(op, problem, hw)
        advisor = llm.advisor(_problem_context(op, problem, hw.name, env, interpreter,
                                               baseline)) if llm and plan else None
        progress = _progress(args.trials, len(finished(study)))
        try:
            if plan is not None:
                tune(study, plan, problem, backend, roof, Budget(args.trials, args.timeout),
                     args.seed, on_trial=lambda rec: (run_dir.append_trial(rec), progress(rec)),
                     advisor=advisor)
        finally:
            progress(None)
        plan_info = {"structures": list(plan.plans) if plan else [],
                     "skipped_infeasible": plan.skipped if plan else [],
                     "feasible_configs": plan.size() if plan else 0,
                     "enumerated_exhaustively": plan.exhaustive() if plan else True}
        head = None
        if backend.gpu_times and plan is not None and confirm_rounds:
            head = _head_to_head(study, plan, problem, backend, args.seed, confirm_rounds,
                                 confirm_top)
        summary = build_summary(op, problem, study, device, hw.name, backend_name, baseline,
                                roof, settings, time.monotonic() - t_start, plan_info, head)
        summary["run_dir"] = str(run_dir.path)
        if llm is not None:
            summary["llm"] = llm.report()
        run_dir.write_json("summary.json", summary)
        return summary
    finally:
        backend.close()


def _head_to_head(study, plan, problem, backend, seed: int, rounds: int,
                  top: int) -> dict | None:
    """The study's ``top`` fastest distinct configs against PyTorch in alternating rounds (see
    ``Worker.round_robin``); the fastest by the median of its rounds is the run's best. One
    measurement per trial is noisy where it matters: at the power cap a GPU slows down over a
    study, so the trial that looks best may only have run while the GPU was cool (seen on an
    H200: a matmul config 5% faster than the first seed in its trial was 6% slower side by
    side).

    With several candidates, picking the fastest of them favours the one whose rounds ran
    luckiest, so the reported times and speedup come from fresh rounds of the winner against
    PyTorch alone (``rounds`` more), and the choosing rounds stay in ``selection``. None when
    nothing was correct."""
    best = best_trial(study)
    if best is None:
        return None
    ranked = []
    for t in distinct_configs(sorted(ok_trials(study), key=lambda t: (t.value, t.number))):
        if t.user_attrs["structure"] not in plan.plans:  # measured by an earlier run's
            continue
        ranked.append(t)
        if len(ranked) == max(1, top):
            break
    if not ranked:
        return {"error": f"structure {best.user_attrs['structure']} is not in this run's plan"}
    log.info("head-to-head: %d config(s) against PyTorch, %d rounds", len(ranked), rounds)
    result = backend.head_to_head(
        problem, [(plan.plans[t.user_attrs["structure"]].structure, t.user_attrs["config"])
                  for t in ranked], seed * 1_000_003 + 7, rounds)
    if "error" in result:
        return {"trial": best.number, **result}
    medians, errors = result.pop("medians_ms"), result.pop("errors")
    winner = ranked[result.pop("best_index")]
    candidates = [
        {"trial": t.number, "structure": t.user_attrs["structure"],
         "config": t.user_attrs["config"], "study_ms": t.value, "median_ms": m,
         **({"error": errors[i]} if i in errors else {})}
        for i, (t, m) in enumerate(zip(ranked, medians))]
    selection = None
    if len(ranked) > 1:
        selection = {k: result[k] for k in ("rounds", "best_ms", "pytorch_ms", "speedup")}
        result = backend.head_to_head(
            problem, [(plan.plans[winner.user_attrs["structure"]].structure,
                       winner.user_attrs["config"])], seed * 1_000_003 + 8, rounds)
        if "error" in result:
            return {"trial": winner.number, "candidates": candidates, **result}
        for key in ("best_index", "medians_ms", "errors"):
            result.pop(key)
    return {"trial": winner.number, "study_best_trial": best.number, **result,
            "candidates": candidates, "selection": selection}


def load_shapes(path: Path, op_name: str) -> list[dict]:
    """The shapes that a shapes file (``run --shapes``) lists for ``op_name``, in file order.

    The file maps op names to lists under ``shapes``; an item is a shape (``4096x4096``, or one
    of the op's named shapes) or a mapping with ``shape`` and optionally ``name`` and ``dtype``.
    """
    from eggsearch.config_files import check_keys, check_mapping, load_yaml
    from eggsearch.errors import ConfigFileError

    data = check_keys(load_yaml(path), str(path), required=["shapes"], optional=["model"])
    lists = check_mapping(data["shapes"], f"{path}: shapes")
    if op_name not in lists:
        raise UsageError(f"{path} lists no shapes for {op_name} (it lists: "
                         f"{', '.join(map(str, lists)) or 'none'})")
    if not isinstance(lists[op_name], list) or not lists[op_name]:
        raise ConfigFileError(f"{path}: shapes.{op_name}: expected a non-empty list")
    out = []
    for i, item in enumerate(lists[op_name]):
        entry = check_keys(item if isinstance(item, dict) else {"shape": item},
                           f"{path}: shapes.{op_name}[{i}]", required=["shape"],
                           optional=["name", "dtype"])
        out.append({"name": str(entry.get("name") or entry["shape"]),
                    "shape": str(entry["shape"]), "dtype": entry.get("dtype")})
    return out


def run_shapes(args) -> list[dict]:
    """``run --shapes FILE``: one study and one run directory per shape, in file order.

    Every shape is checked before the first study starts. The run directories go under
    ``--out`` (default ``runs/<file stem>-<op>``), one per shape, named after it, and
    ``shapes.json`` there indexes them (rewritten after each shape). Compiled kernels are shared
    between the shapes' workers through Triton's on-disk cache.
    """
    import argparse

    from eggsearch.rundir import write_json_atomic

    if args.shape:
        raise UsageError("give --shape or --shapes, not both")
    op = get_op(args.op)
    interpreter = resolve_backend_name(args.backend) == "interpreter"
    items = load_shapes(args.shapes, op.name)
    problems = [op.problem(it["shape"], it["dtype"] or args.dtype, args.allow_tf32,
                           interpreter=interpreter,
                           options=parse_options(getattr(args, "option", [])))
                for it in items]
    names = [_slug(it["name"]) for it in items]
    keys = [p.key for p in problems]
    if len(set(names)) != len(names) or len(set(keys)) != len(keys):
        raise UsageError(f"{args.shapes}: two {op.name} shapes have the same name or problem")
    root = args.out or Path("runs") / f"{args.shapes.stem}-{op.name}"
    index = {"shapes_file": str(args.shapes), "op": op.name, "shapes": []}
    summaries = []
    for item, name, problem in zip(items, names, problems):
        summary = run(argparse.Namespace(**{**vars(args), "shapes": None, "out": root / name,
                                            "shape": problem.shape_key,
                                            "dtype": problem.dtype}))
        summaries.append({**summary, "shape_name": item["name"]})
        index["shapes"].append({"name": item["name"], "problem": problem.key, "run_dir": name,
                                "found": summary["best"] is not None})
        write_json_atomic(root / "shapes.json", index)
    return summaries


def format_shapes(summaries: list[dict]) -> str:
    """One line per shape of a multi-shape run: best structure and time, PyTorch, speedup."""
    rows = [("shape", "problem", "best", "time", "PyTorch", "speedup", "trials")]
    for s in summaries:
        best, pt = s["best"] or {}, s["pytorch"].get("time_ms")
        rows.append((s["shape_name"], s["problem_key"], best.get("structure", "none found"),
                     f"{best['time_ms']:.4g} ms" if best else "-",
                     f"{pt:.4g} ms" if pt else "-",
                     f"{s['speedup']:.2f}x" if s["speedup"] else "-",
                     str(s["trials"]["total"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if any(s["backend"] != "gpu" for s in summaries):
        lines.append("(interpreter: CPU wall-clock times, not GPU performance; no speedup "
                     "claimed)")
    return "\n".join(lines)


def _text(value) -> str | None:
    return None if value is None else str(value)


def _llm_session(args, mode: str):
    """The run's LLM session for ``--proposer llm|both`` (None for ``library``)."""
    if mode not in ("library", "llm", "both"):
        raise UsageError(f"unknown proposer '{mode}'; choose library, llm or both")
    if mode == "library":
        return None
    from eggsearch.llm.session import LLMSession
    from eggsearch.llm.settings import Limits, endpoint_from_args

    endpoint = endpoint_from_args(args)
    cache = args.llm_cache or (args.out / "llm" / "cache" if args.out else None)
    return LLMSession(endpoint, Limits(args.llm_max_calls, args.llm_max_tokens), cache)


def _saved_structures(args, op, problem) -> list:
    """Structures saved by an earlier run (``--structures DIR``), screened and parsed."""
    if not getattr(args, "structures", None):
        return []
    from eggsearch.hardware import HARDWARE_VARIABLES
    from eggsearch.llm.store import load_saved

    return load_saved(args.structures, op.name,
                      set(op.variables(problem)) | set(HARDWARE_VARIABLES))


def _stage_one(args, mode, llm, saved, backend, rules, op, problem, env, hardware, interpreter,
               out):
    """Structures from the library, ``--structures`` and the LLM agents, and their plan.

    Without LLM agents the plan is checked before the run directory exists (bad input writes
    nothing); with them the run directory is created first, for their attempts.
    """
    library = [] if mode == "llm" else LibraryProposer(
        rules, args.search_spaces, only=args.structure).propose(op, problem, env)
    structures = library + saved
    if llm is None:
        return structures, SearchPlan(structures, rules, env, seed=args.seed), None, None
    run_dir = RunDir(out).create()
    backend.worker.log_path = run_dir.worker_log
    baseline = backend.baseline(problem, seed=args.seed * 1_000_003)
    structures += _llm_structures(llm, backend, rules, run_dir, op, problem, env, hardware,
                                  interpreter, baseline, library)
    plan = SearchPlan(structures, rules, env, seed=args.seed) if structures else None
    return structures, plan, run_dir, baseline


def _llm_structures(llm, backend, rules, run_dir, op, problem, env, hardware, interpreter,
                    baseline, library) -> list:
    """Stage one by the LLM agents (see :mod:`eggsearch.proposers.llm`)."""
    if llm.cache_dir is None:  # default cache: in the run directory, so a re-run is free
        from eggsearch.llm.cache import ResponseCache

        llm.client.cache = ResponseCache(run_dir.path / "llm" / "cache")
        llm.cache_dir = run_dir.path / "llm" / "cache"
    previous = run_dir.path / "structures"
    if list(previous.glob("*/structure.json")):  # a resumed run keeps its LLM structures
        from eggsearch.hardware import HARDWARE_VARIABLES
        from eggsearch.llm.store import load_saved

        known = set(op.variables(problem)) | set(HARDWARE_VARIABLES)
        found = [s for s in load_saved(previous, op.name, known) if s.origin == "llm"]
        if found:
            llm.proposed = [s.name for s in found]
            return found
    facts = {"hardware": hardware, "interpreter": interpreter,
             "baseline_ms": baseline.time_ms if baseline.status == Status.OK else None}
    found = llm.proposer(backend, rules, run_dir.path, facts, library).propose(op, problem, env)
    llm.proposed = [s.name for s in found]
    return found


def _problem_context(op, problem, hardware, env, interpreter, baseline) -> dict:
    from eggsearch.llm.context import problem_context

    return problem_context(op, problem, hardware, env, interpreter,
                           baseline.time_ms if baseline.status == Status.OK else None)


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
