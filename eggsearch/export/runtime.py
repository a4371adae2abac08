"""The runtime of an exported module: provenance check at import, then dispatch per call.

This file is copied verbatim into every exported module (after the kernels), so it imports only
torch, triton and the standard library, and it never imports eggsearch. The exporter appends::

    _DISPATCH = Dispatcher(op, launchers, kernel_sha256, reference, config_path, strict)

Dispatch, per (dtype, shape, variant), decided once and cached:
    exact     a tuned shape: its best config.
    bucket    same power-of-two bucket as a tuned shape (every dim rounds up to the same power
              of two): the nearest such shape's configs, best first; the first that passes a
              one-time check against the PyTorch reference on this call's inputs is used.
    autotune  outside every bucket: the nearest tuned shape's top-k configs are each checked and
              timed on this call's inputs (``triton.testing.do_bench``, the benchmark that
              ``triton.autotune`` runs; wall clock on the CPU interpreter); the fastest is used.
              Structures differ in kernels and grids, so this tunes launchers, not one kernel.
    fallback  no usable config (another GPU model or Triton version, another dtype, or no
              candidate passed): the PyTorch reference.

Inputs that are not contiguous are copied first: the configs were tuned on contiguous inputs,
and some launchers assume a unit column stride.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import triton

_log = logging.getLogger(__name__)
_INTERPRETER = "Triton CPU interpreter"
_TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
_DTYPE_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}


class ProvenanceError(RuntimeError):
    """The exported configs were not tuned for this GPU model and Triton version."""


@dataclass(frozen=True)
class Choice:
    """What a call runs: a structure and its config (``None``: the reference), and why."""

    how: str
    structure: str | None = None
    config: dict = field(default_factory=dict)
    tuned_shape: tuple[int, ...] | None = None


def current_device() -> dict:
    """The device that the kernels run on, described like the exported provenance."""
    if os.environ.get("TRITON_INTERPRET") == "1" or not torch.cuda.is_available():
        name, cc = _INTERPRETER, None
    else:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        name, cc = props.name, [props.major, props.minor]
    return {"name": name, "compute_capability": cc, "triton": triton.__version__,
            "torch": torch.__version__}


def check_provenance(table: dict, kernel_sha256: dict, device: dict) -> tuple[list, list]:
    """Entries usable on ``device``, and what is wrong with the table for this device.

    An entry is usable when it was tuned on this GPU model (and compute capability) with this
    Triton version, and its kernels hash to the source in this module. Entries for other GPUs
    are expected in a multi-GPU export and are skipped quietly, unless none is for this one.
    """
    entries = table["entries"]
    here = [e for e in entries if e["gpu"] == device["name"] and e["triton"] == device["triton"]
            and (e["compute_capability"] or None) == device["compute_capability"]]
    usable, problems = [], []
    for e in here:
        foreign = [c for c in e["top"] if kernel_sha256.get(c["structure"]) != c["kernel_sha256"]]
        if foreign:
            problems.append(f"{e['shape_key']} {e['dtype']}: kernel source of "
                            f"{foreign[0]['structure']} differs from the one tuned")
        else:
            usable.append(e)
    if entries and not here:
        tuned = sorted({f"{e['gpu']} / Triton {e['triton']}" for e in entries})
        problems.append(f"configs were tuned on {', '.join(tuned)}; this is {device['name']} "
                        f"/ Triton {device['triton']}")
    return usable, problems


def _bucket(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.ceil(math.log2(max(1, d))) for d in shape)


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum(abs(math.log2(max(1, x)) - math.log2(max(1, y))) for x, y in zip(a, b))


class Dispatcher:
    """Picks and runs a config per call; see the module docstring for the order."""

    def __init__(self, op: str, launchers: dict, kernel_sha256: dict, reference,
                 config_path: Path, strict: bool):
        self.op, self.launchers, self.reference = op, launchers, reference
        self.table = json.loads(Path(config_path).read_text())
        self.device = current_device()
        self.usable, self.problems = check_provenance(self.table, kernel_sha256, self.device)
        if self.problems:
            message = f"{op}: {'; '.join(self.problems)}"
            if strict:
                raise ProvenanceError(message + " (strict: refusing to load)")
            warnings.warn(message + "; such calls use the PyTorch reference", stacklevel=2)
        self.dims = self.table["dims"]
        self.where = [self.table["inputs"][d] for d in self.dims]  # (input index, axis) a dim
        self._default_options = json.dumps(self.table["option_defaults"], sort_keys=True)
        self._choices: dict[tuple, Choice] = {}

    def _key(self, inputs, allow_tf32: bool, options: dict) -> tuple:
        shape = tuple(int(inputs[i].shape[axis]) for i, axis in self.where)
        dtype = next((t.dtype for t in inputs if t.is_floating_point()), None)
        opts = json.dumps({**self.table["option_defaults"], **options}, sort_keys=True) \
            if options else self._default_options
        return _DTYPE_NAMES.get(dtype), shape, bool(allow_tf32), opts

    def _outputs(self, key: tuple, inputs):
        dims = dict(zip(self.dims, key[1]))
        outs = tuple(torch.empty([dims[d] for d in names], dtype=_TORCH_DTYPES[dtype],
                                 device=inputs[0].device)
                     for names, dtype in self.table["outputs"][key[0]])
        return outs[0] if len(outs) == 1 else outs

    # -- choosing ------------------------------------------------------------------------
    def choose(self, *inputs, allow_tf32: bool = False, **options) -> Choice:
        """What a call with these inputs runs (decided on the first call for their key)."""
        return self._choice(self._key(inputs, allow_tf32, options), inputs)

    def _choice(self, key: tuple, inputs) -> Choice:
        choice = self._choices.get(key)
        if choice is None:
            choice = self._choices[key] = self._decide(key, inputs)
            _log.info("%s %s: %s", self.op, key, choice)
        return choice

    def _decide(self, key: tuple, inputs) -> Choice:
        dtype, shape, tf32, opts = key
        entries = [e for e in self.usable if e["dtype"] == dtype and e["allow_tf32"] == tf32
                   and json.dumps(e["options"], sort_keys=True) == opts]
        for e in entries:
            if tuple(e["shape"]) == shape:
                return Choice("exact", e["structure"], e["config"], shape)
        if not entries:
            return Choice("fallback")
        same_bucket = [e for e in entries if _bucket(tuple(e["shape"])) == _bucket(shape)]
        nearest = min(same_bucket or entries, key=lambda e: _distance(tuple(e["shape"]), shape))
        truth = _as_tuple(self.reference(*inputs))
        timed = []
        for cand in nearest["top"]:
            if not self._passes(cand, inputs, truth, nearest["tolerance"], key):
                continue
            choice = Choice("bucket" if same_bucket else "autotune", cand["structure"],
                            cand["config"], tuple(nearest["shape"]))
            if same_bucket:
                return choice
            timed.append((self._time(choice, inputs, key), len(timed), choice))
        return min(timed)[2] if timed else Choice("fallback")

    def _passes(self, cand: dict, inputs, truth, tol: dict, key: tuple) -> bool:
        """Whether ``cand`` agrees with the PyTorch reference on this call's inputs.

        The tuned tolerance bounds each against the exact answer, so they may differ by twice
        it (the reference runs in the inputs' dtype: a float64 one could need far more memory).
        """
        out = self._outputs(key, inputs)
        try:
            self.launchers[cand["structure"]](*inputs, out=out, **cand["config"])
        except Exception as exc:  # a config that does not fit this shape: skip it
            _log.info("%s %s: %s failed: %s", self.op, key, cand["structure"], exc)
            return False
        for o, t in zip(_as_tuple(out), truth):
            o64, t64 = o.double(), t.double()
            if not bool(torch.isfinite(o64).all()) or not torch.allclose(
                    o64, t64, atol=2 * tol["atol"], rtol=2 * tol["rtol"]):
                return False
            if float((o64 - t64).norm()) > 2 * tol["max_rel_err"] * max(float(t64.norm()),
                                                                        1e-30):
                return False
        return True

    def _time(self, choice: Choice, inputs, key: tuple) -> float:
        out = self._outputs(key, inputs)
        fn = lambda: self.launchers[choice.structure](*inputs, out=out, **choice.config)
        if inputs[0].is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            return float(triton.testing.do_bench(fn))
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *inputs, out=None, allow_tf32: bool = False, **options):
        inputs = tuple(t if t.is_contiguous() else t.contiguous() for t in inputs)
        key = self._key(inputs, allow_tf32, options)
        choice = self._choice(key, inputs)
        if choice.structure is None:
            result = self.reference(*inputs)
            if out is None:
                return result
            for o, r in zip(_as_tuple(out), _as_tuple(result)):
                o.copy_(r)
            return out
        if out is None:
            out = self._outputs(key, inputs)
        self.launchers[choice.structure](*inputs, out=out, **choice.config)
        return out


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)
