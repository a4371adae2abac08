"""The built-in expert library: the op's own Triton structures and ``search_spaces/<op>.yaml``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from eggsearch.config_files import SEARCH_SPACES_DIR, check_keys, check_mapping, load_yaml
from eggsearch.errors import ConfigFileError, UsageError
from eggsearch.hardware import HARDWARE_VARIABLES
from eggsearch.ops.base import OpSpec, Problem
from eggsearch.proposers.base import Proposer
from eggsearch.rules import ExpertRules
from eggsearch.space import StructureSpace, parse_structure_space
from eggsearch.structures import Structure


def load_op_spaces(op: OpSpec, problem: Problem,
                   spaces_dir: Path | None = None) -> dict[str, StructureSpace]:
    """Parse and check ``search_spaces/<op>.yaml`` against the op's structures."""
    path = Path(spaces_dir or SEARCH_SPACES_DIR) / f"{op.name}.yaml"
    data = check_keys(load_yaml(path), str(path), required=["op", "structures"])
    if data["op"] != op.name:
        raise ConfigFileError(f"{path}: op is '{data['op']}', expected '{op.name}'")
    raw = check_mapping(data["structures"], f"{path}: structures")
    known = set(op.variables(problem)) | set(HARDWARE_VARIABLES)
    spaces = {}
    for name, entry in raw.items():
        if name not in op.structures:
            raise ConfigFileError(f"{path}: structure '{name}' is not defined in "
                                  f"eggsearch/ops/{op.name}.py (known: "
                                  f"{', '.join(op.structures)})")
        spaces[name] = parse_structure_space(entry, f"{path}: structures.{name}", known)
    missing = set(op.structures) - spaces.keys()
    if missing:
        raise ConfigFileError(f"{path}: no search space for structure(s) "
                              f"{', '.join(sorted(missing))}")
    return spaces


class LibraryProposer(Proposer):
    name = "library"

    def __init__(self, rules: ExpertRules, spaces_dir: Path | None = None,
                 only: Sequence[str] = ()):
        self.rules = rules
        self.spaces_dir = spaces_dir
        self.only = tuple(only)

    def propose(self, op: OpSpec, problem: Problem,
                env: Mapping[str, object]) -> list[Structure]:
        spaces = load_op_spaces(op, problem, self.spaces_dir)
        if self.only:
            unknown = set(self.only) - spaces.keys()
            if unknown:
                raise UsageError(f"unknown structure(s) {', '.join(sorted(unknown))} for "
                                 f"{op.name}; known: {', '.join(spaces)}")
            names = list(self.only)
        else:
            names = self.rules.select(op.name, list(spaces), env)
        return [Structure(op.name, n, op.structures[n].__module__, op.structures[n].__name__,
                          spaces[n]) for n in names]
