"""The run directory: everything a run leaves behind, written so that a kill loses nothing.

    <out>/study.db        Optuna's SQLite storage (unless --storage names another)
    <out>/settings.json   every setting of the run, echoed
    <out>/trials.jsonl    one line per trial, appended and flushed as each trial ends
    <out>/summary.json    the result, replaced atomically at the end
    <out>/worker.log      what the worker processes printed (compiler output, crashes)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{(self.path / 'study.db').resolve()}"

    @property
    def trials(self) -> Path:
        return self.path / "trials.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def worker_log(self) -> Path:
        return self.path / "worker.log"

    def append_trial(self, record: dict) -> None:
        with open(self.trials, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_json(self, name: str, data: dict) -> Path:
        return write_json_atomic(self.path / name, data)


def write_json_atomic(path: Path, data: dict) -> Path:
    """Write to a temporary file beside ``path``, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
