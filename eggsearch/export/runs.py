"""Finding run directories and opening their studies, read-only (export and report use this).

A run directory holds ``summary.json`` and, unless ``--storage`` named another storage, the
study's SQLite file ``study.db`` (README, "The run directory"). A multi-shape run is a directory
of run directories; any directory above run directories can be given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna

from eggsearch.errors import UsageError


@dataclass(frozen=True)
class RunRecord:
    """One run directory: where it is, its summary, and the storage URL of its study."""

    path: Path
    summary: dict
    storage: str

    @property
    def study_name(self) -> str:
        return self.summary["study"]["name"]

    def load_study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return optuna.load_study(study_name=self.study_name, storage=self.storage)
        except (KeyError, ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
            raise UsageError(f"cannot open study '{self.study_name}' of {self.path} in "
                             f"{self.storage}: {e}") from None


def check_storage(url: str) -> str:
    """Refuse a SQLite URL whose file does not exist (opening it would create an empty one)."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise UsageError(f"storage '{url}': no such database file")
    return url


def find_runs(paths: list[Path], storage: str | None = None,
              op: str | None = None) -> list[RunRecord]:
    """Every run directory at or below ``paths`` (of ``op`` if given), sorted by path.

    Raises:
        UsageError: a path does not exist, or nothing below it is a run directory.
    """
    if storage is not None:
        check_storage(storage)
    records: dict[Path, RunRecord] = {}
    for root in paths:
        if not Path(root).is_dir():
            raise UsageError(f"no such run directory: {root}")
        for summary_path in sorted(Path(root).rglob("summary.json")):
            record = _read(summary_path, storage)
            if record is not None and (op is None or record.summary.get("op") == op):
                records[record.path.resolve()] = record
    if not records:
        what = f" of op '{op}'" if op else ""
        raise UsageError(f"no run directory{what} (with summary.json) under "
                         f"{', '.join(str(p) for p in paths)}")
    return [records[k] for k in sorted(records)]


def _read(summary_path: Path, storage: str | None) -> RunRecord | None:
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or "study" not in summary or "op" not in summary:
        return None  # some other summary.json
    db = summary_path.parent / "study.db"
    url = storage or (f"sqlite:///{db.resolve()}" if db.is_file() else None)
    if url is None:
        raise UsageError(f"{summary_path.parent}: its study is not in study.db there "
                         f"(storage {summary['study'].get('storage')}); pass --storage URL")
    return RunRecord(summary_path.parent, summary, url)
