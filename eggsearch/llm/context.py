"""What the agents are told about the problem: built from trusted library code only.

The op's reference and input factory are shown as source (``inspect``), so the model sees the
exact shapes, dtypes and semantics; the hardware as the variables constraints may use.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from eggsearch.ops.base import OpSpec, Problem


@dataclass(frozen=True)
class LibraryResult:
    """What one library structure achieved (for the planner)."""

    structure: str
    config: str
    status: str
    time_ms: float | None
    message: str = ""

    def to_dict(self, interpreter: bool = False) -> dict:
        return {"structure": self.structure, "config": self.config, "status": self.status,
                "time": shown_time(self.time_ms, interpreter), "message": self.message[:200]}


def shown_time(ms: float | None, interpreter: bool) -> str:
    """A time as prompts show it: two significant digits (so that run-to-run noise does not
    change the prompt and the response cache still answers), and none from the interpreter,
    whose wall-clock times say nothing of a GPU."""
    if ms is None:
        return "-"
    if interpreter:
        return "(interpreter: not a GPU time)"
    return f"{float(f'{ms:.2g}'):g} ms"


def problem_context(op: OpSpec, problem: Problem, hardware: str,
                    env: Mapping[str, object], interpreter: bool,
                    baseline_ms: float | None = None) -> dict:
    """The ``problem`` variable of every template."""
    tol = op.tolerance(problem)
    outputs = [{"shape": "x".join(map(str, s)), "dtype": d} for s, d in op.outputs(problem)]
    return {
        "op": op.name, "summary": op.summary, "dims": "x".join(op.dims),
        "shape": problem.shape_key, "sizes": dict(problem.sizes), "dtype": problem.dtype,
        "allow_tf32": problem.allow_tf32, "options": dict(problem.options),
        "reference": _source(type(op).reference) + _constants(op, type(op).reference),
        "make_inputs": _source(type(op).make_inputs),
        "outputs": outputs,
        "tolerance": {"atol": tol.atol, "rtol": tol.rtol, "max_rel_err": tol.max_rel_err},
        "hardware": hardware,
        "variables": {k: v for k, v in env.items() if isinstance(v, (int, float, str, bool))},
        "interpreter": interpreter,
        "baseline": shown_time(baseline_ms, interpreter),
        "library_doc": _module_doc(op),
    }


def _source(fn) -> str:
    try:
        return textwrap.dedent(inspect.getsource(fn)).strip()
    except (OSError, TypeError):
        return f"(source of {getattr(fn, '__qualname__', fn)} unavailable)"


def _constants(op: OpSpec, fn) -> str:
    """Module-level numeric constants the reference names (rmsnorm's ``EPS``), as code."""
    module = sys.modules.get(type(op).__module__)
    names = re.findall(r"\b[A-Z][A-Z0-9_]+\b", _source(fn))
    values = {n: getattr(module, n) for n in dict.fromkeys(names)
              if isinstance(getattr(module, n, None), (int, float))
              and not isinstance(getattr(module, n), bool)}
    return "".join(f"\n{n} = {v!r}" for n, v in values.items())


def _module_doc(op: OpSpec) -> str:
    module = sys.modules.get(type(op).__module__)
    return inspect.cleandoc(module.__doc__ or "") if module else ""
