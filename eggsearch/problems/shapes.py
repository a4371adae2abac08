"""Second shapes: sizes a problem lets vary, so that an answer with hard-coded shapes fails.

A size constant qualifies when only ``get_inputs`` reads it: ``get_init_inputs``, ``Model`` and
the file's other functions do not name it (an answer could not know a changed value), and
changing it changes the inputs' shapes. Batch-like names come first.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator

from eggsearch.problems.loader import ProblemModule


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def names_used_by_model(module: types.ModuleType) -> set[str]:
    """Global names read by the code the file defines, other than ``get_inputs``."""
    names: set[str] = set()
    for key, value in vars(module).items():
        if key == "get_inputs" or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            names |= _code_names(value.__code__)
        elif inspect.isclass(value):
            for attr in vars(value).values():
                func = getattr(attr, "__func__", attr)
                func = getattr(func, "fget", func)
                if inspect.isfunction(func):
                    names |= _code_names(func.__code__)
    return names


def changed_value(v: int) -> int:
    """A quarter more (at least one more): an answer that handles only the sizes it was shown,
    or truncates to them, fails."""
    return v + max(1, v // 4)


def _input_shapes(problem: ProblemModule) -> list:
    import torch

    with torch.device("meta"):
        return [tuple(x.shape) if isinstance(x, torch.Tensor) else x
                for x in problem.inputs(0, "meta")]


def second_shape_candidates(problem: ProblemModule) -> Iterator[dict[str, int]]:
    """Overrides of one size constant each, best first."""
    used = names_used_by_model(problem.module)
    sizes = problem.sizes
    names = [n for n in sizes if n not in used]
    names.sort(key=lambda n: 0 if "batch" in n.lower() else 1)
    try:
        base = _input_shapes(problem)
    except Exception:
        return
    for name in names:
        overrides = {name: changed_value(sizes[name])}
        with problem.sizes_applied(overrides):
            try:
                changed = _input_shapes(problem) != base
            except Exception:
                continue
        if changed:
            yield overrides
