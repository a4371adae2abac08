"""Problem and answer files in KernelBench's format.

A problem file defines ``class Model(nn.Module)``, ``get_inputs()`` (the forward's arguments:
tensors, or Python scalars) and ``get_init_inputs()`` (the constructor's arguments). Its sizes are
module-level integer constants that both functions read when called (KernelBench's habit), and it
may define ``SMALL = {"name": value, ...}``: smaller values of those constants, used on the CPU
interpreter and in tests. An answer file defines ``class ModelNew(nn.Module)``, built with the
same constructor arguments.

Everything wrong with a problem file is a :class:`eggsearch.errors.UsageError` of one line that
names the file. Answer files are untrusted code: only the problem worker imports them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eggsearch.errors import UsageError

SCALARS = (int, float, bool)


def import_file(path: Path, kind: str) -> types.ModuleType:
    """Import a ``.py`` file under a private module name; errors are one line."""
    path = Path(path)
    if path.suffix != ".py":
        raise UsageError(f"{path}: a {kind} must be a .py file")
    if not path.is_file():
        raise UsageError(f"{path}: no such {kind} file")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"eggsearch_{kind}_{path.stem.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt-like exits of bad files too
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UsageError(f"{path}: the {kind} file does not import: {one_line(exc)}") from None
    return module


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ProblemModule:
    """A loaded problem file: its reference model, input factories and size constants.

    Sizes are applied by setting the module's constants, which ``get_inputs`` and
    ``get_init_inputs`` read when called; :meth:`sizes_applied` does it temporarily.
    """

    def __init__(self, path: Path, module: types.ModuleType, small: bool):
        self.path = Path(path)
        self.module = module
        self.name = self.path.stem
        self.Model = module.Model
        self.small = small
        self.base_sizes = size_constants(module)
        if small:
            self._set_sizes(small_sizes(module, self.path, self.base_sizes))

    @property
    def sizes(self) -> dict[str, int]:
        return {k: getattr(self.module, k) for k in self.base_sizes}

    def _set_sizes(self, sizes: dict[str, int]) -> None:
        for name, value in sizes.items():
            setattr(self.module, name, int(value))

    @contextmanager
    def sizes_applied(self, overrides: dict[str, int]) -> Iterator[None]:
        before = self.sizes
        self._set_sizes(overrides)
        try:
            yield
        finally:
            self._set_sizes(before)

    def init_inputs(self) -> list:
        try:
            raw = self.module.get_init_inputs()
        except Exception as exc:
            raise UsageError(f"{self.path}: get_init_inputs() raised {one_line(exc)}") from None
        if not isinstance(raw, (list, tuple)):
            raise UsageError(f"{self.path}: get_init_inputs() must return a list, "
                             f"got {type(raw).__name__}")
        return list(raw)

    def inputs(self, seed: int, device: str) -> list:
        """Fresh forward arguments: ``get_inputs()`` after ``torch.manual_seed(seed)``."""
        import torch

        torch.manual_seed(seed)
        try:
            raw = self.module.get_inputs()
        except Exception as exc:
            raise UsageError(f"{self.path}: get_inputs() raised {one_line(exc)}") from None
        check_inputs(raw, self.path)
        return [x.to(device) if isinstance(x, torch.Tensor) else x for x in raw]

    def build(self, seed: int, device: str, cls: type | None = None):
        """``cls(*get_init_inputs())`` (the reference by default) after ``manual_seed(seed)``."""
        import torch

        cls = cls or self.Model
        args = self.init_inputs()
        torch.manual_seed(seed)
        try:
            model = cls(*args)
        except Exception as exc:
            if cls is not self.Model:
                raise  # an answer's failure is a verdict, not a usage error
            raise UsageError(f"{self.path}: Model(*get_init_inputs()) raised "
                             f"{one_line(exc)}") from None
        return model.to(device)


def check_inputs(raw: object, path: Path) -> None:
    import torch

    if not isinstance(raw, (list, tuple)):
        raise UsageError(f"{path}: get_inputs() must return a list of tensors, "
                         f"got {type(raw).__name__}")
    bad = [type(x).__name__ for x in raw if not isinstance(x, (torch.Tensor, *SCALARS))]
    if bad:
        raise UsageError(f"{path}: get_inputs() must return tensors or numbers, got {bad[0]}")
    if not any(isinstance(x, torch.Tensor) for x in raw):
        raise UsageError(f"{path}: get_inputs() returned no tensor")


def size_constants(module: types.ModuleType) -> dict[str, int]:
    """Module-level int constants (the problem's sizes), in file order."""
    return {k: v for k, v in vars(module).items()
            if type(v) is int and not k.startswith("_") and k != "SMALL"}


def small_sizes(module: types.ModuleType, path: Path, sizes: dict[str, int]) -> dict[str, int]:
    raw = getattr(module, "SMALL", {})
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: SMALL must be a dict of size constants, "
                         f"got {type(raw).__name__}")
    for name, value in raw.items():
        if name not in sizes:
            raise UsageError(f"{path}: SMALL names '{name}', which is not a module-level int")
        if type(value) is not int or value <= 0:
            raise UsageError(f"{path}: SMALL['{name}'] must be a positive int")
    return dict(raw)


def load_problem(path: Path | str, small: bool = False) -> ProblemModule:
    """Import and check a problem file (its functions are not called here)."""
    import torch

    path = Path(path)
    module = import_file(path, "problem")
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, name):
            raise UsageError(f"{path}: the problem file does not define {name}")
    if not (inspect.isclass(module.Model) and issubclass(module.Model, torch.nn.Module)):
        raise UsageError(f"{path}: Model must be a subclass of torch.nn.Module")
    for name in ("get_inputs", "get_init_inputs"):
        if not callable(getattr(module, name)):
            raise UsageError(f"{path}: {name} must be a function")
    return ProblemModule(path, module, small)


def load_solution(path: Path | str) -> type:
    """Import an answer file and return its ``ModelNew`` (untrusted: worker processes only)."""
    import torch

    path = Path(path)
    module = import_file(path, "solution")
    cls = getattr(module, "ModelNew", None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
        raise UsageError(f"{path}: the solution file does not define class "
                         "ModelNew(torch.nn.Module)")
    return cls


def validate_problem(path: Path | str, small: bool = False) -> ProblemModule:
    """Load a problem and run it on PyTorch's meta device (shapes only: no memory, no compute)
    so that a malformed file fails here with one line, before any worker starts."""
    import torch

    problem = load_problem(path, small)
    with torch.device("meta"), torch.no_grad():
        problem.init_inputs()
        inputs = problem.inputs(0, "meta")
        model = problem.build(0, "meta")
        try:
            model(*inputs)
        except NotImplementedError:  # an op without a meta kernel: the worker runs it for real
            pass
        except Exception as exc:
            raise UsageError(f"{path}: Model.forward raised {one_line(exc)}") from None
    return problem


def describe(value: Any) -> Any:
    """A JSON-able description of a tensor or a nest of them: shape and dtype."""
    import torch

    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return repr(value)
