"""``eggsearch sweep``: how much search a result needs, per sampler and trial budget.

For each sampler, budget and repeat (seeds ``seed``, ``seed + 1``, ...) a fresh study runs just
as ``run`` would (same sampler settings, expert seeds enqueued first, same constraints, dedup and
early stop). Its quality is ``best known time / best time it found``: 1.0 found the best known.

Simulation mode (Kernel Tuner's): each distinct config is measured once, on the real backend,
and that measurement is replayed whenever another study picks the config. ``measurements.jsonl``
in the sweep directory keeps them (with each structure's source hash: an edited kernel is
measured again), so a killed sweep resumes and a later sweep there measures only what is new.
The price: one measurement's noise is frozen into every study that picks that config.

The best known: if the pruned space has at most ``--exhaustive-limit`` configs (and was
enumerated whole), every config is measured first and the best known is the space's optimum;
otherwise it is the best of every config measured in the sweep, and the output says so.

Confirmation (``--confirm-top K``, on a GPU by default): one measurement per config is noisy
where it matters most. A matmul at the GPU's power limit runs several percent (on an H200 up to
~15%) slower minutes into a sweep than at its start, so the "best known" can be a config that
was merely measured while the GPU was cool (seen on an H200: the single-shot best of 222
configs was the slowest of the top 8 when they were timed side by side). So after the studies,
the ``K`` fastest measured configs and every study's best are timed again together in
round-robin rounds (see
``Worker.round_robin``); the quality is then computed from those times, the best known being
the fastest of them. The single-measurement quality stays in ``sweep.csv`` (``quality_single``).

Writes ``sweep.csv`` (a row per study), ``sweep.json`` (settings, device, best known, counts,
the table) and ``sweep.png`` (quality against budget; needs matplotlib).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from eggsearch.backends import BACKENDS, resolve_backend_name
from eggsearch.backends.base import Backend
from eggsearch.errors import UsageError
from eggsearch.ops.base import Problem
from eggsearch.plan import SearchPlan, key_of
from eggsearch.records import Measurement, Status
from eggsearch.roofline import Roofline
from eggsearch.space import parse_config_key
from eggsearch.structures import Structure
from eggsearch.tuner import (
    SAMPLERS,
    Budget,
    best_trial,
    enqueue_start,
    finished,
    judge,
    make_sampler,
    tune,
)

log = logging.getLogger(__name__)

CSV_FIELDS = ("sampler", "budget", "repeat", "seed", "trials", "best_ms", "best_known_ms",
              "quality", "best_structure", "best_config", "new_measurements", "confirmed_ms",
              "quality_single")


@dataclass(frozen=True)
class SweepSettings:
    op: str
    shape: str | None
    dtype: str
    budgets: tuple[int, ...]
    samplers: tuple[str, ...]
    repeats: int = 3
    seed: int = 0
    exhaustive_limit: int = 300
    out: Path | None = None
    backend: str = "auto"
    allow_tf32: bool = False
    options: tuple[str, ...] = ()
    structures: tuple[str, ...] = ()
    trial_timeout: float | None = None
    search_spaces: Path | None = None
    rules: Path | None = None
    confirm_top: int | None = None   # None: 8 on a GPU, 0 on the interpreter
    confirm_rounds: int = 5


@dataclass(frozen=True)
class SweepResult:
    out: Path
    rows: tuple[dict, ...]
    info: dict
    png: Path | None


def _positive_ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{flag} '{text}': expected positive integers separated by commas")
    return tuple(sorted(set(values)))


def settings_from_args(args) -> SweepSettings:
    """Checked settings from the command line; a bad value is a :class:`UsageError`."""
    samplers = tuple(dict.fromkeys(s.strip() for s in str(args.samplers).split(",")))
    for s in samplers:
        if s not in SAMPLERS:
            raise UsageError(f"--samplers: unknown sampler '{s}'; choose from "
                             f"{', '.join(SAMPLERS)}")
    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.exhaustive_limit < 0:
        raise UsageError("--exhaustive-limit must not be negative")
    confirm_top = getattr(args, "confirm_top", None)
    confirm_rounds = getattr(args, "confirm_rounds", 5)
    if (confirm_top is not None and confirm_top < 0) or confirm_rounds < 1:
        raise UsageError("--confirm-top must not be negative and --confirm-rounds must be at "
                         "least 1")
    return SweepSettings(
        op=args.op, shape=args.shape, dtype=args.dtype,
        budgets=_positive_ints(args.budgets, "--budgets"), samplers=samplers,
        repeats=args.repeats, seed=args.seed, exhaustive_limit=args.exhaustive_limit,
        out=args.out, backend=args.backend, allow_tf32=args.allow_tf32,
        options=tuple(args.option), structures=tuple(args.structure),
        trial_timeout=args.trial_timeout, search_spaces=args.search_spaces, rules=args.rules,
        confirm_top=confirm_top, confirm_rounds=confirm_rounds)


class MeasurementCache:
    """``measurements.jsonl``: a header line naming what was measured, then one line per config.

    Lines are appended and flushed as measurements arrive. A measurement whose structure's
    source hash differs from the current one is ignored (the kernel changed since).
    """

    def __init__(self, path: Path, header: dict, hashes: dict[str, str]):
        self.path, self.header, self.hashes = Path(path), header, hashes
        self.entries: dict[str, Measurement] = {}
        if not self.path.exists():
            return
        self.check(self.path, header)  # an empty file (killed at once) passes
        for line in self.path.read_text().splitlines()[1:]:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if hashes.get(rec["structure"]) == rec["sha256"]:
                self.entries[rec["key"]] = Measurement.from_dict(rec["measurement"])

    @staticmethod
    def check(path: Path, header: dict) -> None:
        """Raise :class:`UsageError` if ``path`` holds measurements of something else (only
        the keys of ``header`` are compared)."""
        if not path.exists() or path.stat().st_size == 0:
            return
        with open(path) as f:
            first = f.readline()
        try:
            held = json.loads(first).get("header", {})
        except (ValueError, AttributeError):
            held = {}
        if {k: held.get(k) for k in header} != header:
            raise UsageError(f"{path} holds measurements of {held}, not {header}; choose "
                             "another --out")

    def get(self, key: str) -> Measurement | None:
        return self.entries.get(key)

    def put(self, key: str, structure: str, m: Measurement) -> None:
        self.entries[key] = m
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a") as f:
            if new:
                f.write(json.dumps({"header": self.header}, sort_keys=True) + "\n")
            f.write(json.dumps({"key": key, "structure": structure,
                                "sha256": self.hashes[structure],
                                "measurement": m.to_dict()}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


class ReplayBackend(Backend):
    """Measures each distinct config once on ``inner``; answers repeats from the cache."""

    name = "replay"

    def __init__(self, inner: Backend, cache: MeasurementCache):
        self.inner, self.cache = inner, cache
        self.gpu_times = inner.gpu_times
        self.measured = self.replayed = 0

    def start(self) -> dict:
        return self.inner.start()

    def evaluate(self, problem: Problem, structure: Structure, config: dict,
                 seeds: tuple[int, ...]) -> Measurement:
        key = key_of(structure.name, config)
        m = self.cache.get(key)
        if m is not None:
            self.replayed += 1
            return m
        m = self.inner.evaluate(problem, structure, config, seeds)
        self.cache.put(key, structure.name, m)
        self.measured += 1
        return m

    def baseline(self, problem: Problem, seed: int) -> Measurement:
        return self.inner.baseline(problem, seed)

    def close(self) -> None:
        self.inner.close()


def _measure_all(plan: SearchPlan, problem: Problem, backend: ReplayBackend, seed: int) -> None:
    """The exhaustive pass: every feasible config, once."""
    from tqdm import tqdm

    configs = plan.all_configs()
    for i, (name, config) in enumerate(tqdm(configs, desc="exhaustive pass", unit="config",
                                            leave=False)):
        backend.evaluate(problem, plan.plans[name].structure, config,
                         (seed * 1_000_003 + 2 * i + 1, seed * 1_000_003 + 2 * i + 2))


def _one_study(plan: SearchPlan, problem: Problem, backend: ReplayBackend, roof: Roofline,
               sampler: str, budget: int, seed: int) -> dict:
    """A fresh in-memory study, set up as ``run`` sets up its own."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize",
                                sampler=make_sampler(sampler, seed, budget))
    enqueue_start(study, plan, sampler, budget)
    before = backend.measured
    tune(study, plan, problem, backend, roof, Budget(budget), seed, on_trial=lambda rec: None)
    best = best_trial(study)
    return {"sampler": sampler, "budget": budget, "seed": seed,
            "trials": len(finished(study)), "best_ms": best.value if best else math.inf,
            "best_structure": best.user_attrs["structure"] if best else "",
            "best_config": json.dumps(best.user_attrs["config"], sort_keys=True) if best else "",
            "new_measurements": backend.measured - before}


def _best_known(cache: MeasurementCache, roof: Roofline, gpu_times: bool) -> tuple[float, str]:
    """The fastest correct measurement so far, and its config key."""
    best = (math.inf, "")
    for key, m in cache.entries.items():
        m = judge(m, roof, gpu_times)
        if m.status == Status.OK and m.time_ms is not None and m.time_ms < best[0]:
            best = (m.time_ms, key)
    return best


@dataclass(frozen=True)
class _Context:
    problem: Problem
    inner: Backend
    plan: SearchPlan
    roof: Roofline
    cache: MeasurementCache
    out: Path
    info: dict


def _prepare(st: SweepSettings) -> _Context:
    """Check the input, start the backend, plan, and open the cache: as ``run`` does, except
    that nothing is written before the cache is known to match (a UsageError otherwise)."""
    from eggsearch.export.source import structure_sha256
    from eggsearch.hardware import load_hardware, spec_for_device
    from eggsearch.ops import get_op
    from eggsearch.proposers import LibraryProposer
    from eggsearch.proposers.library import load_op_spaces
    from eggsearch.roofline import roofline
    from eggsearch.rules import load_rules
    from eggsearch.runner import _slug, parse_options

    op = get_op(st.op)
    backend_name = resolve_backend_name(st.backend)
    interpreter = backend_name == "interpreter"
    problem = op.problem(st.shape, st.dtype, st.allow_tf32, interpreter=interpreter,
                         options=parse_options(list(st.options)))
    rules = load_rules(st.rules)
    specs = load_hardware(st.rules / "hardware.yaml" if st.rules else None)
    unknown = set(st.structures) - set(load_op_spaces(op, problem, st.search_spaces))
    if unknown:
        raise UsageError(f"unknown structure(s) {', '.join(sorted(unknown))} for {op.name}")
    out = Path(st.out) if st.out else None
    if out is not None:  # a sweep of another problem there: said before anything starts
        MeasurementCache.check(out / "measurements.jsonl", {"problem": problem.key,
                                                            "backend": backend_name})
    inner = BACKENDS[backend_name](trial_timeout=st.trial_timeout or (
        300.0 if interpreter else 60.0))
    try:
        device = inner.start()
        hw = spec_for_device(device, specs)
        env = {**op.variables(problem), **hw.variables()}
        structures = LibraryProposer(rules, st.search_spaces, only=st.structures).propose(
            op, problem, env)
        plan = SearchPlan(structures, rules, env, seed=st.seed)
        gpu = "interpreter" if interpreter else _slug(hw.name)
        out = out or Path("runs") / f"sweep-{problem.key}-{gpu}"
        header = {"problem": problem.key, "device": device["name"], "backend": backend_name,
                  "triton": device.get("triton")}
        hashes = {s.name: structure_sha256(s.module, s.launcher) for s in structures}
        cache = MeasurementCache(out / "measurements.jsonl", header, hashes)
        out.mkdir(parents=True, exist_ok=True)
        inner.worker.log_path = out / "worker.log"
    except BaseException:
        inner.close()
        raise
    info = {"problem": problem.key, "device": device["name"], "hardware_spec": hw.name,
            "backend": backend_name, "torch": device.get("torch"),
            "triton": device.get("triton"),
            "timer": "cuda-events" if inner.gpu_times else "interpreter-wallclock (CPU)",
            "structures": list(plan.plans), "settings": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(st).items()}}
    return _Context(problem, inner, plan, roofline(op, problem, hw), cache, out, info)


def sweep(st: SweepSettings) -> SweepResult:
    """Run the sweep; see the module docstring. Bad input is checked before anything runs."""
    t0 = time.monotonic()
    ctx = _prepare(st)
    try:
        backend = ReplayBackend(ctx.inner, ctx.cache)
        exhaustive = ctx.plan.exhaustive() and ctx.plan.size() <= st.exhaustive_limit
        if exhaustive:
            _measure_all(ctx.plan, ctx.problem, backend, st.seed)
        rows = _studies(st, ctx, backend)
        top = st.confirm_top if st.confirm_top is not None else (8 if ctx.inner.gpu_times else 0)
        confirmed = _confirm(st, ctx, rows, top) if top else None
    finally:
        ctx.inner.close()
    best_ms, best_key = _best_known(ctx.cache, ctx.roof, backend.gpu_times)
    for row in rows:
        row["best_known_ms"] = best_ms
        row["quality"] = best_ms / row["best_ms"] if math.isfinite(row["best_ms"]) else 0.0
        row["quality_single"], row["confirmed_ms"] = row["quality"], None
    if confirmed and confirmed["times_ms"]:
        best_key = min(confirmed["times_ms"], key=confirmed["times_ms"].get)
        best_ms = confirmed["times_ms"][best_key]
        for row in rows:
            t = confirmed["times_ms"].get(_row_key(row))
            row["best_known_ms"], row["confirmed_ms"] = best_ms, t
            row["quality"] = best_ms / t if t else 0.0
    info = {**ctx.info, "best_known": {
        "time_ms": best_ms if math.isfinite(best_ms) else None, "config_key": best_key,
        "source": ("confirmed" if confirmed and confirmed["times_ms"] else
                   "exhaustive" if exhaustive else "best measured")},
        "confirmation": confirmed,
        "space_size": ctx.plan.size(), "exhaustive": exhaustive,
        "measured": len(ctx.cache.entries), "measured_now": backend.measured,
        "replayed": backend.replayed, "studies": len(rows),
        "wall_time_s": round(time.monotonic() - t0, 1), "table": quality_table(rows),
        "table_single": quality_table(rows, "quality_single")}
    return _write(st, ctx.out, rows, info)


def _row_key(row: dict) -> str | None:
    if not row["best_structure"]:
        return None
    return key_of(row["best_structure"], json.loads(row["best_config"]))


def _confirm(st: SweepSettings, ctx: _Context, rows: list[dict], top: int) -> dict:
    """The ``top`` fastest measured configs and every study's best, timed again together in
    ``st.confirm_rounds`` round-robin rounds; each one's time is the median of its rounds."""
    ranked = sorted((m.time_ms, key) for key, m in ctx.cache.entries.items()
                    if judge(m, ctx.roof, ctx.inner.gpu_times).status == Status.OK)
    keys = list(dict.fromkeys([k for _, k in ranked[:top]] +
                              [k for k in map(_row_key, rows) if k]))
    candidates = []
    for key in keys:
        name, config = parse_config_key(key)
        if name in ctx.plan.plans:
            candidates.append((key, ctx.plan.plans[name].structure, config))
    log.info("confirming %d configs in %d round-robin rounds", len(candidates),
             st.confirm_rounds)
    reply = ctx.inner.round_robin(ctx.problem, [(s, c) for _, s, c in candidates],
                                  st.seed * 1_000_003 + 11, st.confirm_rounds)
    if "error" in reply:
        log.warning("confirmation failed: %s", reply["error"])
        return {"error": reply["error"], "times_ms": {}}
    times = {key: statistics.median(r) for (key, _, _), r in zip(candidates, reply["rounds_ms"])
             if r}
    return {"rounds": st.confirm_rounds, "top": top, "times_ms": times,
            "rounds_ms": {key: r for (key, _, _), r in zip(candidates, reply["rounds_ms"]) if r},
            "errors": {candidates[i][0]: e for i, e in reply["errors"].items()},
            "timer": reply.get("timer")}


def _studies(st: SweepSettings, ctx, backend: ReplayBackend) -> list[dict]:
    from tqdm import tqdm

    jobs = [(s, b, r) for s in st.samplers for b in st.budgets for r in range(st.repeats)]
    rows = []
    for sampler, budget, repeat in tqdm(jobs, desc="studies", unit="study", leave=False):
        row = _one_study(ctx.plan, ctx.problem, backend, ctx.roof, sampler, budget,
                         st.seed + repeat)
        rows.append({**row, "repeat": repeat})
    return rows


def quality_table(rows: list[dict], field: str = "quality") -> dict:
    """sampler -> budget -> mean, min and max quality over the repeats."""
    table: dict[str, dict[str, dict]] = {}
    for r in rows:
        table.setdefault(r["sampler"], {}).setdefault(str(r["budget"]), {"q": []})["q"].append(
            r[field])
    return {s: {b: {"mean": statistics.fmean(v["q"]), "min": min(v["q"]), "max": max(v["q"]),
                    "n": len(v["q"])} for b, v in by_budget.items()}
            for s, by_budget in table.items()}


def _write(st: SweepSettings, out: Path, rows: list[dict], info: dict) -> SweepResult:
    from eggsearch.rundir import write_json_atomic

    csv_path = out / "sweep.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in CSV_FIELDS})
    write_json_atomic(out / "sweep.json", info)
    png = None
    try:
        from eggsearch.report import plot_sweep

        png = plot_sweep(csv_path, out / "sweep.png", f"{info['problem']} on {info['device']}")
    except ImportError:
        log.warning("matplotlib is not installed: no sweep.png (`eggsearch report %s` draws it "
                    "where matplotlib is)", out)
    return SweepResult(out, tuple(rows), info, png)


def read_rows(csv_path: Path) -> list[dict]:
    """The rows of a ``sweep.csv``, with budget and quality as numbers."""
    with open(csv_path, newline="") as f:
        return [{**r, "budget": int(r["budget"]), "quality": float(r["quality"])}
                for r in csv.DictReader(f)]


def _quality_lines(table: dict, budgets: list[int]) -> list[str]:
    width = max(len(s) for s in table) + 2
    lines = ["sampler".ljust(width) + "".join(f"{b:>14}" for b in budgets)]
    for sampler, by_budget in table.items():
        cells = [f"{by_budget[str(b)]['mean']:.3f} ({by_budget[str(b)]['min']:.3f})"
                 for b in budgets]
        lines.append(sampler.ljust(width) + "".join(f"{c:>14}" for c in cells))
    return lines


def format_table(result: SweepResult) -> str:
    """The printed result: what was swept, the best known, then quality per sampler/budget."""
    info = result.info
    budgets = sorted({r["budget"] for r in result.rows})
    best = info["best_known"]
    best_text = f"{best['time_ms']:.4g} ms ({best['config_key']})" if best["time_ms"] else "none"
    source = ("every config of the pruned space measured" if info["exhaustive"] else
              f"best of {info['measured']} measured configs; the pruned space has "
              f"{info['space_size']}, more than --exhaustive-limit")
    conf = info.get("confirmation") or {}
    if conf.get("times_ms"):
        source = (f"confirmed: the {conf['top']} fastest measured configs and each study's best "
                  f"({len(conf['times_ms'])} configs) timed again in {conf['rounds']} "
                  f"round-robin rounds; qualities below use those times\n            ({source})")
    elif conf.get("error"):
        source += f"\n            confirmation failed: {conf['error']}"
    lines = [f"sweep: {info['problem']} on {info['device']} ({info['backend']}; times: "
             f"{info['timer']})",
             f"best known: {best_text}", f"            {source}",
             f"simulation mode: {info['measured_now']} config(s) measured now "
             f"({info['measured']} in the cache), {info['replayed']} trial(s) replayed from "
             f"measurements, over {info['studies']} fresh studies",
             "quality = best known time / best found; mean (worst) over "
             f"{max(r['repeat'] for r in result.rows) + 1} repeat(s)", ""]
    lines += _quality_lines(info["table"], budgets)
    if conf.get("times_ms"):
        lines += ["", "the same from single measurements (before confirmation):"]
        lines += _quality_lines(info["table_single"], budgets)
    lines += ["", f"files: {result.out / 'sweep.csv'}, {result.out / 'sweep.json'}"
              + (f", {result.png}" if result.png else " (no PNG: matplotlib missing)")]
    return "\n".join(lines)
