"""The search plan: every proposed structure's feasible configs, and how Optuna samples them.

Constraints are applied before the study: each structure's space is enumerated (or sampled when
huge), and a parameter's domain shrinks to the values that appear in some feasible config. What
Optuna then suggests may still break a constraint in combination; such a trial is pruned before
any compile.

Optuna parameter names: ``structure`` (categorical), then ``<structure>.<param>`` for integer
ranges and choices, and ``<structure>.log2_<param>`` for powers of two, sampled as an integer
exponent so that samplers see the order. The decoded config is stored on each trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import optuna

from eggsearch.errors import NoFeasibleConfigError
from eggsearch.rules import ExpertRules
from eggsearch.space import Constraint, Param, Value, config_key
from eggsearch.structures import Structure


@dataclass
class StructurePlan:
    structure: Structure
    extra: tuple[Constraint, ...]       # generic expert constraints that apply to it
    feasible: list[dict[str, Value]]
    exhaustive: bool
    domains: dict[str, tuple[Value, ...]]

    @property
    def name(self) -> str:
        return self.structure.name


class SearchPlan:
    def __init__(self, structures: list[Structure], rules: ExpertRules,
                 env: Mapping[str, object], seed: int = 0):
        self.env = dict(env)
        self.plans: dict[str, StructurePlan] = {}
        empty = []
        for s in structures:
            defined = set(s.space.param_names) | set(self.env)
            extra = rules.constraints_for(s.op, defined)
            feasible, exhaustive = s.space.enumerate(self.env, extra, seed=seed)
            if not feasible:
                empty.append(s.name)
                continue
            domains = {p.name: tuple(v for v in p.values if any(c[p.name] == v for c in feasible))
                       for p in s.space.params}
            self.plans[s.name] = StructurePlan(s, extra, feasible, exhaustive, domains)
        if not self.plans:
            names = ", ".join(s.name for s in structures) or "none proposed"
            raise NoFeasibleConfigError(f"no configuration of any structure ({names}) satisfies "
                                        "the constraints for this problem and hardware")
        self.skipped = empty

    # -- sizes -----------------------------------------------------------------------------
    def size(self) -> int:
        return sum(len(p.feasible) for p in self.plans.values())

    def exhaustive(self) -> bool:
        return all(p.exhaustive for p in self.plans.values())

    def all_configs(self) -> list[tuple[str, dict]]:
        return [(n, c) for n, p in self.plans.items() for c in p.feasible]

    def seeds(self) -> list[tuple[str, dict]]:
        """The expert seeds that are feasible here, in file order."""
        out = []
        for name, plan in self.plans.items():
            for seed in plan.structure.space.seeds:
                config = dict(seed)
                if not self.violations(name, config):
                    out.append((name, config))
        return out

    # -- sampling --------------------------------------------------------------------------
    def violations(self, structure: str, config: dict) -> list[Constraint]:
        plan = self.plans[structure]
        return plan.structure.space.violations(config, self.env, plan.extra)

    def suggest(self, trial: optuna.Trial) -> tuple[Structure, dict[str, Value]]:
        name = trial.suggest_categorical("structure", list(self.plans))
        plan = self.plans[name]
        config = {}
        for p in plan.structure.space.params:
            config[p.name] = _suggest(trial, name, p, plan.domains[p.name])
        return plan.structure, config

    def encode(self, structure: str, config: Mapping[str, Value]) -> dict[str, Value]:
        """Optuna params for ``config`` (to enqueue a seed or a proposed config)."""
        params: dict[str, Value] = {"structure": structure}
        plan = self.plans[structure]
        for p in plan.structure.space.params:
            if len(plan.domains[p.name]) > 1:
                name, value = _encoded(structure, p, config[p.name])
                params[name] = value
        return params


def _encoded(structure: str, p: Param, value: Value) -> tuple[str, Value]:
    if p.kind == "pow2":
        return f"{structure}.log2_{p.name}", int(math.log2(int(value)))
    return f"{structure}.{p.name}", value


def _suggest(trial: optuna.Trial, structure: str, p: Param, domain: tuple[Value, ...]) -> Value:
    if len(domain) == 1:
        return domain[0]
    if p.kind == "pow2":
        lo, hi = (int(math.log2(v)) for v in (min(domain), max(domain)))
        return 1 << trial.suggest_int(f"{structure}.log2_{p.name}", lo, hi)
    if p.kind == "int":
        return trial.suggest_int(f"{structure}.{p.name}", min(domain), max(domain))
    return trial.suggest_categorical(f"{structure}.{p.name}", list(domain))


def key_of(structure: str, config: Mapping[str, Value]) -> str:
    return config_key(config, structure)
