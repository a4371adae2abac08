"""A structure: a parameterized kernel template for one op, with its declared search space.

Library structures live in ``eggsearch/ops/<op>.py`` (``module`` is a dotted name); structures
written by an LLM are saved as ``.py`` files (``module`` is a path). Either way the worker
imports ``module`` in its own process and calls ``launcher(*inputs, out=out, **config)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from eggsearch.space import StructureSpace


@dataclass(frozen=True)
class Structure:
    op: str
    name: str
    module: str
    launcher: str
    space: StructureSpace
    origin: str = "library"

    def ref(self) -> dict[str, str]:
        """What the worker needs to find the launcher."""
        return {"module": self.module, "launcher": self.launcher}


def load_launcher(module: str, launcher: str):
    """Import ``module`` (dotted name or ``.py`` path) and return its ``launcher`` function."""
    if module.endswith(".py"):
        path = Path(module).resolve()
        name = f"eggsearch_generated_{abs(hash(str(path)))}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        mod = sys.modules[name]
    else:
        mod = importlib.import_module(module)
    return getattr(mod, launcher)
