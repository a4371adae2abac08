"""Stage two: an Optuna study over the search plan, one trial per candidate.

The loop (:func:`tune`) uses Optuna's ask-and-tell interface. Per trial: suggest a structure
and config; prune it if it breaks a constraint (never compiled); answer it from the records if
the same config was already measured; otherwise have the backend verify and time it. A trial that
fails (compile error, fault, timeout, wrong answer, faster than physics) is told to Optuna as
an infinitely slow config, Triton's autotuner's convention, so samplers learn to avoid it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.trial import TrialState

from eggsearch.backends.base import Backend
from eggsearch.errors import UsageError
from eggsearch.ops.base import Problem
from eggsearch.plan import SearchPlan, key_of
from eggsearch.records import Measurement, Status
from eggsearch.roofline import Roofline

SAMPLERS = ("tpe", "gp", "cmaes", "random", "grid")


def make_sampler(name: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        # multivariate + group model the conditional space (params depend on the structure).
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(4, min(10, n_trials // 6)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name in ("random", "grid"):  # grid: every feasible config is enqueued, then measured
        return optuna.samplers.RandomSampler(seed=seed)
    raise UsageError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")


def open_study(name: str, storage: str, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    direction="minimize", load_if_exists=True)
    except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
        raise UsageError(f"cannot open study storage '{storage}': {exc}") from None
    # Trials left RUNNING by a killed run will never finish: close them as failed.
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study


def enqueue_start(study: optuna.Study, plan: SearchPlan, sampler: str, budget: int) -> int:
    """Enqueue expert seeds (and, for ``grid``, every feasible config) into a fresh study."""
    if study.get_trials(deepcopy=False):
        return 0
    queue = plan.seeds()
    if sampler == "grid":
        seen = {key_of(n, c) for n, c in queue}
        queue += [(n, c) for n, c in plan.all_configs() if key_of(n, c) not in seen]
    for name, config in queue[:budget]:
        study.enqueue_trial(plan.encode(name, config), skip_if_exists=True)
    return min(len(queue), budget)


@dataclass(frozen=True)
class Budget:
    trials: int
    timeout_s: float | None = None


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False,
                            states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))


def ok_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials whose kernel was correct and timed (``ok``)."""
    return [t for t in finished(study) if t.user_attrs.get("status") == Status.OK.value]


def distinct_configs(trials):
    """``trials`` (in the caller's order) without the later ones that measured a config an
    earlier one did (same ``config_key``): one per config, for rankings of the top few."""
    seen = set()
    for t in trials:
        key = t.user_attrs.get("config_key")
        if key not in seen:
            seen.add(key)
            yield t


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The fastest trial whose kernel was correct (``ok``), or None."""
    ok = ok_trials(study)
    return min(ok, key=lambda t: t.value) if ok else None


def measured(study: optuna.Study) -> dict[str, tuple[int, float]]:
    """Config key -> (number, value) of the trial that measured it."""
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("status") != Status.DUPLICATE.value and "config_key" in t.user_attrs:
            out.setdefault(t.user_attrs["config_key"], (t.number, t.value))
    return out


def tune(study: optuna.Study, plan: SearchPlan, problem: Problem, backend: Backend,
         roof: Roofline, budget: Budget, seed: int,
         on_trial: Callable[[dict], None], advisor: Advisor | None = None) -> None:
    """Run trials until the budget, the timeout or the feasible space is used up.

    ``advisor`` (optional) is consulted every ``advisor.every`` trials with the study's
    history; the configs it proposes are enqueued (the sampler keeps searching around them).
    """
    start, known = time.monotonic(), measured(study)
    advised: set[str] = set()
    done = 0
    while len(finished(study)) < budget.trials:
        if budget.timeout_s is not None and time.monotonic() - start > budget.timeout_s:
            break
        if plan.exhaustive() and len(known) >= plan.size():
            break  # every feasible config has been measured
        trial = study.ask()
        structure, config = plan.suggest(trial)
        key = key_of(structure.name, config)
        record = {"trial": trial.number, "structure": structure.name,
                  "origin": structure.origin, "config": config, "config_key": key}
        if key in advised:
            record["advised"] = True
        for k in ("structure", "config", "config_key"):
            trial.set_user_attr(k, record[k])
        broken = plan.violations(structure.name, config)
        if broken:
            record.update(status=Status.PRUNED.value, violations=[c.name for c in broken])
            trial.set_user_attr("status", Status.PRUNED.value)
            trial.set_user_attr("violations", record["violations"])
            study.tell(trial, state=TrialState.PRUNED)
        elif key in known:
            first_number, first_value = known[key]
            record.update(status=Status.DUPLICATE.value, duplicate_of=first_number,
                          value_ms=_finite(first_value))
            trial.set_user_attr("status", Status.DUPLICATE.value)
            trial.set_user_attr("duplicate_of", first_number)
            study.tell(trial, first_value)
        else:
            seeds = (seed * 1_000_003 + 2 * trial.number + 1,
                     seed * 1_000_003 + 2 * trial.number + 2)
            m = judge(backend.evaluate(problem, structure, config, seeds), roof,
                      backend.gpu_times)
            value = m.time_ms if m.status == Status.OK else math.inf
            record.update(status=m.status.value, value_ms=_finite(value),
                          measurement=m.to_dict())
            trial.set_user_attr("status", m.status.value)
            trial.set_user_attr("measurement", m.to_dict())
            study.tell(trial, value)
            known[key] = (trial.number, value)  # not study.trials: that deep-copies them all
        on_trial(record)
        done += 1
        if advisor is not None and advisor.every > 0 and done % advisor.every == 0:
            advised |= take_advice(study, plan, advisor(plan, history(study)), known)


@dataclass(frozen=True)
class Narrowing:
    """Restrict an ordinal (pow2/int) param of a structure to ``[low, high]``."""

    structure: str
    param: str
    low: float
    high: float


@dataclass(frozen=True)
class Advice:
    """What an advisor returns: configs to enqueue, and optionally narrower ranges."""

    configs: tuple[tuple[str, dict], ...] = ()
    narrow: tuple[Narrowing, ...] = ()


class Advisor(Protocol):
    """A stage-two proposal operator (e.g. :class:`eggsearch.llm.advisor.LLMTuningAdvisor`)."""

    every: int

    def __call__(self, plan: SearchPlan, history: list[dict]) -> Advice: ...


def history(study: optuna.Study) -> list[dict]:
    """The finished trials as plain records (what an advisor sees)."""
    out = []
    for t in finished(study):
        m = t.user_attrs.get("measurement") or {}
        out.append({"trial": t.number, "structure": t.user_attrs.get("structure"),
                    "config": t.user_attrs.get("config"), "status": t.user_attrs.get("status"),
                    "time_ms": m.get("time_ms"), "message": m.get("message", "")})
    return out


def take_advice(study: optuna.Study, plan: SearchPlan, advice: Advice,
                known: dict) -> set[str]:
    """Enqueue the advised configs that are new and feasible; apply narrowings. Returns the
    keys enqueued."""
    keys = set()
    for name, config in advice.configs:
        key = key_of(name, config)
        sp = plan.plans.get(name)
        if sp is None or key in known or set(config) != set(sp.domains) or any(
                config[p] not in sp.domains[p] for p in sp.domains):
            continue
        if not plan.violations(name, config):
            study.enqueue_trial(plan.encode(name, config), skip_if_exists=True)
            keys.add(key)
    for n in advice.narrow:
        sp = plan.plans.get(n.structure)
        param = next((p for p in sp.structure.space.params if p.name == n.param), None) \
            if sp else None
        if param is not None and param.ordinal:
            kept = tuple(v for v in sp.domains[n.param] if n.low <= v <= n.high)
            if kept:
                sp.domains[n.param] = kept
    return keys


def judge(m: Measurement, roof: Roofline, gpu_times: bool) -> Measurement:
    """A GPU time below the physical bound is a bug, never a win."""
    if m.status == Status.OK and gpu_times and m.time_ms is not None:
        if roof.below_bound(m.time_ms * 1e-3):
            return m.with_status(Status.SUSPICIOUS,
                                 f"{m.time_ms * 1e3:.2f} us is below the roofline bound "
                                 f"{roof.bound_s * 1e6:.2f} us")
    return m


def _finite(v: float | None) -> float | None:
    return None if v is None or math.isinf(v) else v
