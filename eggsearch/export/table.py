"""The dispatch table: the best configs of each tuned problem, with their provenance.

One entry per (GPU model, Triton version, dtype, shape, precision contract, options): the best
correct config found by any study of that problem, and the top-k distinct correct configs (the
candidates tried for shapes outside the table), each with its measured time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass

from optuna.trial import TrialState

from eggsearch.errors import UsageError
from eggsearch.export.runs import RunRecord
from eggsearch.ops.base import OpSpec
from eggsearch.records import Status
from eggsearch.tuner import distinct_configs

log = logging.getLogger(__name__)

# Distinct primes for the dims of a probe problem: an input axis of that size is that dim.
_PROBE_SIZES = (37, 41, 43, 47, 53, 59, 61, 67, 71, 73)


@dataclass(frozen=True)
class Candidate:
    structure: str
    config: dict
    time_ms: float
    trial: int
    module: str     # dotted name (the library) or path of a saved structure's kernel.py
    launcher: str


@dataclass(frozen=True)
class Entry:
    """The provenance of one tuned problem and its best candidates (best first)."""

    provenance: dict
    top: tuple[Candidate, ...]

    @property
    def key(self) -> tuple:
        p = self.provenance
        return (p["gpu"], p["triton"], p["dtype"], p["shape_key"], p["allow_tf32"],
                sorted(p["options"].items()))

    def to_json(self, sha256: dict[str, str]) -> dict:
        best = self.top[0]
        top = [{"structure": c.structure, "config": c.config, "time_ms": c.time_ms,
                "trial": c.trial, "kernel_sha256": sha256[c.structure]} for c in self.top]
        return {**self.provenance, "structure": best.structure, "config": best.config,
                "kernel_sha256": sha256[best.structure], "time_ms": best.time_ms,
                "speedup": _speedup(self.provenance, best.time_ms), "top": top}


def _speedup(provenance: dict, time_ms: float) -> float | None:
    """From the run's head-to-head rounds when its best was timed there, else PyTorch's time
    at the start of the study over the best trial's."""
    pytorch_ms = provenance["pytorch_ms"]
    if provenance["backend"] != "gpu" or not pytorch_ms:
        return None  # interpreter times say nothing of a GPU
    if provenance.get("head_to_head"):
        return provenance["head_to_head"]["speedup"]
    return pytorch_ms / time_ms


def entry_of(record: RunRecord, op: OpSpec, top_k: int) -> Entry | None:
    """The entry for one run directory's study, or ``None`` if it has no correct kernel."""
    study = record.load_study()
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.user_attrs.get("status") == Status.OK.value and t.value is not None
              and math.isfinite(t.value)]
    # The run's head-to-head rounds, when they ran, rank the configs they timed (the study's
    # fastest few) above its single measurements: those come first, by their medians.
    head = record.summary.get("head_to_head") or {}
    confirmed = {c["trial"]: c["median_ms"] for c in head.get("candidates") or []
                 if head.get("speedup") and c.get("median_ms")}
    top = []
    for t in distinct_configs(sorted(trials, key=lambda t: (
            t.number not in confirmed, confirmed.get(t.number, t.value), t.number))):
        structure = t.user_attrs.get("structure")
        where = _launcher_of(record, op, structure)
        if where is None:
            continue
        top.append(Candidate(structure, dict(t.user_attrs["config"]), t.value, t.number,
                             *where))
        if len(top) == top_k:
            break
    if not top:
        log.warning("%s: no correct kernel in study %s; not exported", record.path,
                    record.study_name)
        return None
    provenance = _provenance(record, op, study, top[0])
    if confirmed and head.get("trial") == top[0].trial:
        provenance["head_to_head"] = {k: head[k] for k in ("speedup", "best_ms", "pytorch_ms",
                                                           "rounds")}
    return Entry(provenance, tuple(top))


def _launcher_of(record: RunRecord, op: OpSpec, structure: str) -> tuple[str, str] | None:
    """(module, launcher) of a library structure, or of one saved in the run directory
    (``structures/<name>/``, written by the LLM proposer); None if it is in neither."""
    if structure in op.structures:
        launcher = op.structures[structure]
        return launcher.__module__, launcher.__name__
    manifest = record.path / "structures" / str(structure) / "structure.json"
    try:
        saved = json.loads(manifest.read_text())
        module = manifest.parent / saved["module"]
        intact = hashlib.sha256(module.read_bytes()).hexdigest() == saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        saved, intact = None, False
    if saved is None or not intact:
        log.warning("%s: structure '%s' is neither in eggsearch/ops/%s.py nor saved intact "
                    "in the run directory; its trials are not exported", record.path,
                    structure, op.name)
        return None
    return str(module.resolve()), str(saved["launcher"])


def _provenance(record: RunRecord, op: OpSpec, study, best: Candidate) -> dict:
    s, device = record.summary, record.summary.get("device", {})
    problem = op.problem(s["shape"], s["dtype"], bool(s.get("allow_tf32")),
                         options=s.get("options") or {})
    measurement = study.trials[best.trial].user_attrs.get("measurement", {})
    pytorch = s.get("pytorch") or {}
    return {
        "gpu": device.get("name"), "compute_capability": device.get("compute_capability"),
        "triton": device.get("triton"), "torch": device.get("torch"),
        "backend": s.get("backend"), "timer": measurement.get("timer") or s.get("timer"),
        "shape": list(problem.shape), "shape_key": problem.shape_key,
        "dtype": problem.dtype, "allow_tf32": problem.allow_tf32,
        "options": dict(problem.options), "problem_key": problem.key,
        "p20_ms": measurement.get("p20_ms"), "p80_ms": measurement.get("p80_ms"),
        "pytorch_ms": pytorch.get("time_ms") if pytorch.get("status") == "ok" else None,
        "trials": len(study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))),
        "date": s.get("date"), "study": record.study_name,
        "run_dir": str(record.path.resolve()),
        "tolerance": vars(op.tolerance(problem)),
    }


def best_per_key(entries: list[Entry]) -> list[Entry]:
    """The fastest entry of each (GPU, Triton, dtype, shape, contract, options)."""
    best: dict[str, Entry] = {}
    for e in entries:
        k = repr(e.key)
        if k not in best or e.top[0].time_ms < best[k].top[0].time_ms:
            best[k] = e
    return sorted(best.values(), key=lambda e: repr(e.key))


def io_layout(op: OpSpec) -> tuple[dict[str, list[int]], dict[str, list]]:
    """Where each dim is read from the inputs, and each dtype's outputs as dim names.

    Found on a probe problem whose dims all differ (distinct primes, else the op's interpreter
    shape when the op refuses those): the first input axis of a dim's size is that dim.
    """
    for probe in (_PROBE_SIZES[:len(op.dims)], op.interpreter_shape):
        sizes = dict(zip(op.dims, probe))
        if len(set(probe)) < len(op.dims):
            continue
        try:
            inputs = op.make_inputs(op.problem(tuple(probe), op.dtypes[0]), 0, "cpu")
        except UsageError:
            continue
        where = {dim: next(([i, axis] for i, t in enumerate(inputs)
                            for axis, n in enumerate(t.shape) if n == size), None)
                 for dim, size in sizes.items()}
        if all(where.values()):
            return where, _output_layout(op, sizes)
    raise UsageError(f"cannot export {op.name}: its dims cannot be told apart in its inputs")


def _output_layout(op: OpSpec, sizes: dict[str, int]) -> dict[str, list]:
    by_size = {size: dim for dim, size in sizes.items()}
    outputs = {}
    for dtype in op.dtypes:
        shapes = op.outputs(op.problem(tuple(sizes.values()), dtype))
        if any(n not in by_size for shape, _ in shapes for n in shape):
            raise UsageError(f"cannot export {op.name}: an output axis is not one of its dims")
        outputs[dtype] = [[[by_size[n] for n in shape], out_dtype] for shape, out_dtype in shapes]
    return outputs
