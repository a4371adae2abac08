"""Expert rules from ``expert_rules/``: constraints for every structure, and which structures
suit which problems (``selection.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eggsearch.config_files import EXPERT_RULES_DIR, check_keys, check_mapping, load_yaml
from eggsearch.errors import ConfigFileError
from eggsearch.expressions import Expression, parse
from eggsearch.space import Constraint


@dataclass(frozen=True)
class GenericConstraint:
    constraint: Constraint
    ops: tuple[str, ...] = ()  # empty: every op

    def applies(self, op: str, defined: set[str]) -> bool:
        return (not self.ops or op in self.ops) and self.constraint.expr.names <= defined


@dataclass(frozen=True)
class SelectionRule:
    structure: str
    when: Expression
    why: str


@dataclass(frozen=True)
class ExpertRules:
    constraints: tuple[GenericConstraint, ...]
    selection: dict[str, tuple[SelectionRule, ...]]

    def constraints_for(self, op: str, defined: set[str]) -> tuple[Constraint, ...]:
        return tuple(g.constraint for g in self.constraints if g.applies(op, defined))

    def select(self, op: str, structures: list[str], env: Mapping[str, object]) -> list[str]:
        """The structures worth trying; a structure without a rule is always kept."""
        rules = {r.structure: r for r in self.selection.get(op, ())}
        return [s for s in structures if s not in rules or rules[s].when.evaluate(env)]


def load_rules(directory: Path | None = None) -> ExpertRules:
    directory = Path(directory or EXPERT_RULES_DIR)
    path = directory / "constraints.yaml"
    data = check_keys(load_yaml(path), str(path), required=["constraints"])
    generic = []
    for i, raw in enumerate(data["constraints"] or []):
        at = f"{path}: constraints[{i}]"
        check_keys(raw, at, required=["name", "expr"], optional=["why", "ops"])
        ops = raw.get("ops") or []
        if not isinstance(ops, list):
            raise ConfigFileError(f"{at}: ops must be a list of op names")
        generic.append(GenericConstraint(
            Constraint(str(raw["name"]), parse(raw["expr"], at), str(raw.get("why", ""))),
            tuple(str(o) for o in ops)))
    path = directory / "selection.yaml"
    selection: dict[str, tuple[SelectionRule, ...]] = {}
    for op, entries in load_yaml(path).items():
        rules = []
        for structure, raw in check_mapping(entries, f"{path}: {op}").items():
            at = f"{path}: {op}.{structure}"
            check_keys(raw, at, required=["when"], optional=["why"])
            rules.append(SelectionRule(str(structure), parse(raw["when"], at),
                                       str(raw.get("why", ""))))
        selection[str(op)] = tuple(rules)
    return ExpertRules(tuple(generic), selection)
