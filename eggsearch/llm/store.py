"""Saved structures: how LLM structures are written to a run directory and read back.

A structure that passed verification is saved as::

    <run>/structures/<name>/kernel.py        the Triton module (kernel + launcher)
    <run>/structures/<name>/space.yaml       its search space, in the search_spaces/ form
    <run>/structures/<name>/structure.json   op, launcher, origin, the plan, the model, the
                                             sha256 of kernel.py and the validating measurement

``run --structures DIR`` reads them back (DIR: a run directory, its ``structures/`` folder, or
one structure's folder), screens the module again and parses the space, so structures proposed
on one machine are tuned on another.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from eggsearch.config_files import check_keys
from eggsearch.errors import ConfigFileError, UsageError
from eggsearch.llm.safety import launcher_keywords, screen, summarize
from eggsearch.rundir import write_json_atomic
from eggsearch.space import StructureSpace, parse_structure_space
from eggsearch.structures import Structure

MANIFEST_KEYS = ("op", "name", "launcher", "module", "origin", "sha256")


def space_entry(text: str, where: str) -> dict:
    """The one structure entry of a YAML space, written in full (``op``/``structures``) form
    or as the bare entry (``params``/``constraints``/``seeds``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(f"{where}: YAML does not parse: {problem}") from None
    if isinstance(data, dict) and "structures" in data:
        entries = data["structures"]
        if not isinstance(entries, dict) or len(entries) != 1:
            raise ConfigFileError(f"{where}: expected exactly one entry under 'structures'")
        data = next(iter(entries.values()))
    if not isinstance(data, dict):
        raise ConfigFileError(f"{where}: expected a mapping with 'params'")
    return data


def check_launcher(source: str, launcher: str, space: StructureSpace) -> list[str]:
    """Tunables the launcher cannot take (it must accept every declared param)."""
    names, var_kw = launcher_keywords(source, launcher)
    if var_kw:
        return []
    return [f"the launcher `{launcher}` has no parameter for tunable {p}"
            for p in space.param_names if p not in names]


def save_structure(root: Path, name: str, op: str, source: str, entry: dict,
                   manifest: dict) -> Path:
    """Write one structure under ``root/name``; returns the path of its module."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    module = folder / "kernel.py"
    module.write_text(source)
    (folder / "space.yaml").write_text(
        yaml.safe_dump({"op": op, "structures": {name: entry}}, sort_keys=False))
    write_json_atomic(folder / "structure.json", {
        **manifest, "op": op, "name": name, "launcher": manifest.get("launcher", "launch"),
        "module": "kernel.py", "sha256": hashlib.sha256(source.encode()).hexdigest()})
    return module


def load_saved(directory: Path, op: str, known: set[str]) -> list[Structure]:
    """The saved structures for ``op`` under ``directory``; bad ones are a ConfigFileError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"--structures {directory}: not a directory")
    manifests = sorted({*directory.glob("structure.json"), *directory.glob("*/structure.json"),
                        *directory.glob("structures/*/structure.json")})
    out = []
    for path in manifests:
        s = _load_one(path, known)
        if s is not None and s.op == op:
            out.append(s)
    if not out:
        raise UsageError(f"--structures {directory}: no saved structure for {op} "
                         f"({len(manifests)} saved structure(s) found)")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigFileError(f"--structures {directory}: two saved structures are named alike")
    return out


def _load_one(path: Path, known: set[str]) -> Structure | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc}") from None
    check_keys(manifest, str(path), required=MANIFEST_KEYS,
               optional=["plan", "model", "validation", "problem", "endpoint", "created"])
    module = path.parent / str(manifest["module"])
    if module.parent != path.parent or module.suffix != ".py":
        raise ConfigFileError(f"{path}: module must be a .py file beside it")
    try:
        source = module.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{module}: cannot read: {exc.strerror}") from None
    reasons = screen(source, manifest["launcher"])
    if reasons:
        raise ConfigFileError(f"{module}: rejected by the safety screen: {summarize(reasons)}")
    space_file = path.parent / "space.yaml"
    entry = space_entry(space_file.read_text() if space_file.exists() else "", str(space_file))
    space = parse_structure_space(entry, f"{space_file}", known)
    bad = check_launcher(source, manifest["launcher"], space)
    if bad:
        raise ConfigFileError(f"{module}: {bad[0]}")
    return Structure(str(manifest["op"]), str(manifest["name"]), str(module.resolve()),
                     str(manifest["launcher"]), space, origin=str(manifest["origin"]))


def copy_into(structures: list[Structure], root: Path) -> list[Structure]:
    """Copy saved structures' folders under ``root`` (a run's ``structures/``) and point them
    there, so that the run directory holds every module its study imports."""
    out = []
    for s in structures:
        src = Path(s.module).parent
        dest = Path(root) / s.name
        if src.resolve() != dest.resolve():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        out.append(Structure(s.op, s.name, str((dest / Path(s.module).name).resolve()),
                             s.launcher, s.space, s.origin))
    return out
