"""Measurement backends, chosen by name.

* ``gpu``: a CUDA GPU, through an isolated worker process.
* ``interpreter``: Triton's CPU interpreter, for machines without a GPU (correctness; its times
  are interpreter times).
* ``auto``: ``gpu`` when PyTorch sees a CUDA device, else ``interpreter``.

A new backend subclasses :class:`eggsearch.backends.base.Backend` and is added to
:data:`BACKENDS`.
"""

from __future__ import annotations

from eggsearch.backends.base import Backend
from eggsearch.backends.isolated import GPUBackend, InterpreterBackend
from eggsearch.errors import UsageError

BACKENDS: dict[str, type[Backend]] = {"gpu": GPUBackend, "interpreter": InterpreterBackend}


def resolve_backend_name(name: str) -> str:
    if name == "auto":
        import torch

        return "gpu" if torch.cuda.is_available() else "interpreter"
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'; choose auto, {', '.join(BACKENDS)}")
    if name == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--backend gpu: PyTorch sees no CUDA device here "
                             "(use --backend interpreter)")
    return name


__all__ = ["BACKENDS", "Backend", "GPUBackend", "InterpreterBackend", "resolve_backend_name"]
