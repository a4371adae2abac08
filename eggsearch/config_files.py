"""Reading the project's YAML files with a strict schema: unknown keys are errors, not typos."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from eggsearch.errors import ConfigFileError

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_SPACES_DIR = REPO_ROOT / "search_spaces"
EXPERT_RULES_DIR = REPO_ROOT / "expert_rules"
PROMPTS_DIR = REPO_ROOT / "prompts"


def load_yaml(path: Path) -> dict:
    """Load a YAML mapping; raises :class:`ConfigFileError` naming the file on any problem."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(f"{path}{where}: YAML does not parse: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level")
    return data


def check_keys(mapping: object, where: str, required: Iterable[str] = (),
               optional: Iterable[str] = ()) -> dict:
    """Check that ``mapping`` is a dict with all ``required`` keys and nothing unknown."""
    if not isinstance(mapping, dict):
        raise ConfigFileError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    required, optional = set(required), set(optional)
    unknown = mapping.keys() - required - optional
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise ConfigFileError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
                              f" (allowed: {allowed})")
    missing = required - mapping.keys()
    if missing:
        raise ConfigFileError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
    return mapping


def check_mapping(mapping: object, where: str) -> dict:
    """Check that ``mapping`` is a dict whose keys are names chosen by the file's author."""
    if not isinstance(mapping, dict):
        raise ConfigFileError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    return mapping
