"""Search spaces: each structure's declared tunables and constraints, read from YAML.

The file ``search_spaces/<op>.yaml`` has the form::

    op: matmul
    structures:
      tiled:
        params:
          BLOCK_M: {pow2: [16, 256]}       # powers of two, inclusive
          num_stages: {int: [2, 5]}        # integers, inclusive
          GROUP_M: {choices: [1, 4, 8]}    # any scalars
        constraints:
          - {name: smem, expr: "num_stages * BLOCK_M * 64 <= smem_per_block", why: "..."}
        seeds:
          - {BLOCK_M: 128, num_stages: 3, GROUP_M: 8}

LLM-written structures carry a space of the same form (one ``structures`` entry).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass

from eggsearch.config_files import check_keys, check_mapping
from eggsearch.errors import ConfigFileError
from eggsearch.expressions import Expression, parse

Value = int | float | str | bool
ENUMERATION_LIMIT = 200_000


@dataclass(frozen=True)
class Param:
    """One tunable. ``kind`` is pow2, int or choices; ``values`` lists every allowed value."""

    name: str
    kind: str
    values: tuple[Value, ...]

    @property
    def ordinal(self) -> bool:
        return self.kind in ("pow2", "int")


@dataclass(frozen=True)
class Constraint:
    name: str
    expr: Expression
    why: str = ""

    def holds(self, env: Mapping[str, object]) -> bool:
        return bool(self.expr.evaluate(env))


@dataclass(frozen=True)
class StructureSpace:
    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...] = ()
    seeds: tuple[tuple[tuple[str, Value], ...], ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def size(self) -> int:
        n = 1
        for p in self.params:
            n *= len(p.values)
        return n

    def violations(self, config: Mapping[str, Value], env: Mapping[str, object],
                   extra: tuple[Constraint, ...] = ()) -> list[Constraint]:
        scope = {**env, **config}
        return [c for c in (*self.constraints, *extra) if not c.holds(scope)]

    def enumerate(self, env: Mapping[str, object], extra: tuple[Constraint, ...] = (),
                  limit: int = ENUMERATION_LIMIT, seed: int = 0) -> tuple[list[dict], bool]:
        """Feasible configs, and whether the list is the whole feasible set.

        A depth-first walk over the params in declared order that checks each constraint as
        soon as every param it names is set, so a broken partial config is never extended.
        Spaces larger than ``limit`` points are sampled (``limit`` random points) instead.
        """
        constraints = (*self.constraints, *extra)
        if self.size() > limit:
            rng = random.Random(seed)
            feasible, seen = [], set()
            for _ in range(limit):
                config = {p.name: rng.choice(p.values) for p in self.params}
                key = config_key(config)
                if key not in seen and not self.violations(config, env, extra):
                    feasible.append(config)
                seen.add(key)
            return feasible, False
        position = {p.name: i for i, p in enumerate(self.params)}
        # at_depth[i]: the constraints whose last-named param is params[i].
        at_depth: list[list[Constraint]] = [[] for _ in self.params]
        for c in constraints:
            needed = [position[n] for n in c.expr.names if n in position]
            if not needed:
                if not c.holds(env):
                    return [], True
                continue
            at_depth[max(needed)].append(c)
        feasible: list[dict] = []
        scope = dict(env)

        def walk(depth: int) -> None:
            if depth == len(self.params):
                feasible.append({p.name: scope[p.name] for p in self.params})
                return
            param = self.params[depth]
            for value in param.values:
                scope[param.name] = value
                if all(c.holds(scope) for c in at_depth[depth]):
                    walk(depth + 1)
            del scope[param.name]

        walk(0)
        return feasible, True


def config_key(config: Mapping[str, Value], structure: str = "") -> str:
    """A stable text key for a config (the dedup key in a study)."""
    body = json.dumps(dict(sorted(config.items())), separators=(",", ":"))
    return f"{structure}:{body}" if structure else body


def parse_config_key(key: str) -> tuple[str, dict[str, Value]]:
    """(structure, config) of a key made by :func:`config_key` with a structure."""
    structure, body = key.split(":", 1)
    return structure, json.loads(body)


def parse_structure_space(data: object, where: str, known_names: set[str]) -> StructureSpace:
    """Parse one structure's entry; ``known_names`` are the problem and hardware variables."""
    check_keys(data, where, required=["params"], optional=["constraints", "seeds"])
    raw_params = check_mapping(data["params"], f"{where}.params")
    if not raw_params:
        raise ConfigFileError(f"{where}.params: declare at least one tunable")
    params = tuple(_parse_param(name, spec, f"{where}.params.{name}")
                   for name, spec in raw_params.items())
    names = {p.name for p in params}
    constraints = []
    for i, raw in enumerate(data.get("constraints") or []):
        at = f"{where}.constraints[{i}]"
        check_keys(raw, at, required=["name", "expr"], optional=["why"])
        expr = parse(raw["expr"], at)
        unknown = expr.names - names - known_names
        if unknown:
            raise ConfigFileError(f"{at}: '{raw['expr']}' names unknown variable(s) "
                                  f"{', '.join(sorted(unknown))}")
        constraints.append(Constraint(str(raw["name"]), expr, str(raw.get("why", ""))))
    seeds = []
    for i, raw in enumerate(data.get("seeds") or []):
        at = f"{where}.seeds[{i}]"
        check_keys(raw, at, required=names)
        for p in params:
            if raw[p.name] not in p.values:
                raise ConfigFileError(f"{at}: {p.name}={raw[p.name]!r} is outside its "
                                      f"declared values")
        seeds.append(tuple((p.name, raw[p.name]) for p in params))
    return StructureSpace(params, tuple(constraints), tuple(seeds))


def _parse_param(name: str, spec: object, where: str) -> Param:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ConfigFileError(f"{where}: '{name}' is not a valid parameter name")
    check_keys(spec, where, optional=["pow2", "int", "choices"])
    if len(spec) != 1:
        raise ConfigFileError(f"{where}: give exactly one of pow2, int, choices")
    kind, value = next(iter(spec.items()))
    if kind == "choices":
        if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float, str, bool)) for v in value):
            raise ConfigFileError(f"{where}: choices must be a non-empty list of scalars")
        if len(set(value)) != len(value):
            raise ConfigFileError(f"{where}: choices repeat a value")
        return Param(name, kind, tuple(value))
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or value[0] > value[1] or value[0] < 0):
        raise ConfigFileError(f"{where}: {kind} needs [low, high] with integers 0 <= low <= high")
    lo, hi = value
    if kind == "int":
        if hi - lo > 4096:
            raise ConfigFileError(f"{where}: int range wider than 4096 values")
        return Param(name, kind, tuple(range(lo, hi + 1)))
    if lo < 1 or lo & (lo - 1) or hi & (hi - 1):
        raise ConfigFileError(f"{where}: pow2 bounds must be powers of two, got [{lo}, {hi}]")
    return Param(name, kind, tuple(1 << e for e in range(lo.bit_length() - 1, hi.bit_length())))
