"""The correctness protocol for an answer (``ModelNew``) to a problem (``Model``).

1. ``Model`` and ``ModelNew`` are built from ``get_init_inputs()`` after the same seed.
2. At least five trials, each on inputs drawn fresh from ``get_inputs()`` under a new seed.
   Trials 1 and 2 write their new values into trial 0's tensors, so an answer that caches its
   output by input address returns a stale result. Where the problem allows it, one more trial
   at a second shape (a size constant that only ``get_inputs`` uses, changed), so hard-coded
   shapes fail.
3. In each trial the answer runs first, on inputs the reference never sees (the reference gets
   clones), after freed memory of the output's sizes has been filled with NaN: an output left
   unwritten cannot pick up the reference's result. Its ATen calls are recorded
   (:class:`~eggsearch.problems.anticheat.OpRecorder`); calling the problem's main computation
   in PyTorch is a cheat. Then its inputs are compared with copies (mutation is incorrect), the
   process is checked for patched functions, changed precision switches and background threads
   (cheats), and its output is compared with the reference's.
4. An output is correct when it has the reference's structure, shapes and dtypes, passes
   ``allclose`` at the dtype's tolerance (fp32: atol = rtol = 1e-4) against the eager result
   (or, where that eager result itself misses the tolerance against the float64 truth, against
   the truth with ``atol`` widened to twice the eager result's own error), and its normwise
   relative error is within the dtype's bound (fp32: 1e-5) or twice the eager reference's own
   error, both measured against the reference run in float64 where the model runs in float64. The
   normwise bound is the precision probe: an all-zeros answer, or one computed in TF32 or
   fp16 where the problem is fp32 (relative error ~5e-4 on random inputs), fails it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch

from eggsearch.ops.base import DEFAULT_TOLERANCES, Tolerance
from eggsearch.problems.anticheat import (
    Integrity,
    OpRecorder,
    computing,
    forbidden_calls,
    poison_allocator,
)
from eggsearch.problems.loader import ProblemModule, one_line
from eggsearch.problems.shapes import second_shape_candidates
from eggsearch.verify import Check, compare

INIT_SEED = 42
MIN_TRIALS = 5
EXACT = Tolerance(atol=0.0, rtol=0.0, max_rel_err=0.0)


@dataclass(frozen=True)
class Verdict:
    """``status`` is ``correct``, ``incorrect`` or ``cheat``; ``reason`` says why not."""

    status: str
    reason: str = ""
    trials: int = 0
    max_abs_err: float | None = None
    rel_err: float | None = None
    second_shape: dict[str, int] | None = None
    reference_ops: tuple[str, ...] = ()
    answer_ops: tuple[str, ...] = field(default=())

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class _Failed(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    if not dtype.is_floating_point:
        return EXACT
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    return DEFAULT_TOLERANCES[name]


def flat_tensors(value) -> list:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flat_tensors(v)]
    return [value]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _clone(inputs: list) -> list:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]


def _double(inputs: list) -> list:
    return [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
            for x in inputs]


class Protocol:
    """One verification: the two models, the float64 copy, and the trial loop."""

    def __init__(self, problem: ProblemModule, answer_cls: type, device: str,
                 integrity: Integrity, seed: int = 0):
        self.problem, self.device, self.integrity, self.seed = problem, device, integrity, seed
        self.reference = problem.build(INIT_SEED, device)
        try:
            self.answer = problem.build(INIT_SEED, device, answer_cls)
        except Exception as exc:
            raise _Failed("incorrect", f"ModelNew(*get_init_inputs()) raised "
                                       f"{one_line(exc)}") from None
        self._check_integrity("ModelNew()")
        try:
            self.truth_model = copy.deepcopy(self.reference).double()
        except Exception:
            self.truth_model = None
        probe = problem.inputs(seed + 7919, device)
        with OpRecorder() as rec:
            out = self.reference(*probe)
        _sync(device)
        self.reference_ops = tuple(sorted(computing(rec.ops)))
        self.out_bytes = [t.numel() * t.element_size() for t in flat_tensors(out)
                          if isinstance(t, torch.Tensor)]
        self.worst: tuple[float, float] = (0.0, 0.0)
        self.answer_ops: set[str] = set()

    def _check_integrity(self, where: str) -> None:
        found = self.integrity.violations()
        if found:
            raise _Failed("cheat", f"the answer {found[0]} (seen after {where})")

    def trial(self, inputs: list) -> None:
        """Run the answer, then the reference, on the same values; raise :class:`_Failed`."""
        saved, ref_inputs = _clone(inputs), _clone(inputs)
        poison_allocator(self.out_bytes, self.device)
        recorder = OpRecorder()
        try:
            with recorder:
                out = self.answer(*inputs)
            _sync(self.device)
        except Exception as exc:
            self._check_integrity("forward")
            bad = forbidden_calls(recorder.ops, self.reference_ops)
            if bad:
                raise _Failed("cheat", f"calls {bad[0]} in PyTorch (the problem's main "
                                       "computation) before failing") from None
            raise _Failed("incorrect", f"forward raised {one_line(exc)}") from None
        self._check_integrity("forward")
        self.answer_ops |= computing(recorder.ops)
        bad = forbidden_calls(recorder.ops, self.reference_ops)
        if bad:
            raise _Failed("cheat", f"calls {bad[0]} in PyTorch: the problem's main "
                                   "computation must run in the answer's own kernels")
        for i, (a, b) in enumerate(zip(inputs, saved)):
            if isinstance(a, torch.Tensor) and not torch.equal(a, b):
                raise _Failed("incorrect", f"modifies input {i} in place")
        expected = self.reference(*ref_inputs)
        truth = None
        if self.truth_model is not None:
            try:
                truth = self.truth_model(*_double(ref_inputs))
            except Exception:
                self.truth_model = None
        _sync(self.device)
        self._compare(out, expected, truth)

    def _compare(self, out, expected, truth) -> None:
        max_abs, rel = compare_outputs(out, expected, truth)
        self.worst = (max(self.worst[0], max_abs), max(self.worst[1], rel))


def compare_outputs(out, expected, truth) -> tuple[float, float]:
    """Point 4 of the protocol; the worst (max abs, normwise relative) error, or :class:`_Failed`.

    ``truth`` is the reference run in float64 (None where the model cannot run in float64).
    """
    if isinstance(expected, torch.Tensor) != isinstance(out, torch.Tensor):
        raise _Failed("incorrect", f"returns a {type(out).__name__}, expected a "
                                   f"{type(expected).__name__}")
    outs, exps = flat_tensors(out), flat_tensors(expected)
    truths = flat_tensors(truth) if truth is not None else [None] * len(exps)
    if len(outs) != len(exps):
        raise _Failed("incorrect", f"returns {len(outs)} outputs, expected {len(exps)}")
    worst = (0.0, 0.0)
    for i, (o, e, t) in enumerate(zip(outs, exps, truths)):
        where = f"output {i}: " if len(exps) > 1 else ""
        if not isinstance(e, torch.Tensor):
            continue
        if not isinstance(o, torch.Tensor):
            raise _Failed("incorrect", f"{where}returns {type(o).__name__}, not a tensor")
        if o.dtype != e.dtype:
            raise _Failed("incorrect", f"{where}dtype {o.dtype} != expected {e.dtype}")
        if not isinstance(t, torch.Tensor) or t.shape != e.shape:
            t = None
        tol = tolerance_for(e.dtype)
        check = _elementwise(o, e, t, tol)
        if not check.ok:
            raise _Failed("incorrect", where + check.message)
        rel, bound = _normwise(o, e, t, tol)
        if rel > bound:
            raise _Failed("incorrect", f"{where}normwise relative error {rel:.3g} > "
                                       f"{bound:.3g} (precision below the problem's dtype?)")
        worst = (max(worst[0], check.max_abs_err), max(worst[1], rel))
    return worst


def _elementwise(o, e, t, tol: Tolerance) -> Check:
    """``allclose`` against the eager reference at the dtype's tolerance.

    Where the eager reference itself misses that tolerance against the float64 truth (long
    fp32 reductions: a K = 4096 matmul on unscaled randn is off by ~1e-4 in cuBLAS as on the
    CPU), two honest fp32 results can disagree by more than the tolerance, so the answer is
    then held to the truth instead, with ``atol`` widened to twice the reference's own worst
    error. An answer in TF32 or fp16 is off by far more (~1e-2 at that K) and still fails.
    """
    elementwise = Tolerance(tol.atol, tol.rtol, math.inf)
    check = compare(o, e.double(), elementwise)
    if check.ok or t is None or not e.is_floating_point():
        return check
    t = t.double()
    reference = compare(e, t, elementwise)
    if reference.ok or not math.isfinite(reference.max_abs_err):
        return check  # the reference meets the tolerance (or is no yardstick: non-finite)
    ref_err = reference.max_abs_err
    widened = Tolerance(max(tol.atol, 2.0 * ref_err), tol.rtol, math.inf)
    against_truth = compare(o, t, widened)
    if against_truth.ok:
        return against_truth
    return Check(False, check.max_abs_err, check.rel_err,
                 f"{check.message}; against the float64 truth, with atol widened to "
                 f"twice PyTorch's own error ({ref_err:.3g}): {against_truth.message}")


def _normwise(o, e, t, tol: Tolerance) -> tuple[float, float]:
    def rel(a, b):
        b = b.double()
        denom = float(b.norm())
        diff = float((a.double() - b).norm())
        return diff / denom if denom > 0 else diff

    if not e.is_floating_point():
        return 0.0, 0.0
    if t is not None:
        return rel(o, t), max(tol.max_rel_err, 2.0 * rel(e, t))
    return rel(o, e), tol.max_rel_err


def _trial_inputs(protocol: Protocol, first: list | None, seed: int, reuse: bool) -> list:
    fresh = protocol.problem.inputs(seed, protocol.device)
    if not reuse or first is None:
        return fresh
    out = []
    for buf, new in zip(first, fresh):
        if isinstance(buf, torch.Tensor):
            buf.copy_(new)  # same address, new values
            out.append(buf)
        else:
            out.append(new)
    return out


@torch.no_grad()
def verify(problem: ProblemModule, answer_cls: type, device: str, integrity: Integrity,
           trials: int = MIN_TRIALS, seed: int = 0, second_shape: bool = True) -> Verdict:
    """Run the protocol; never raises for a bad answer (its failure is the verdict)."""
    trials = max(MIN_TRIALS, trials)
    try:
        protocol = Protocol(problem, answer_cls, device, integrity, seed)
    except _Failed as failed:
        return Verdict(failed.status, failed.reason)
    done, second, first = 0, None, None
    try:
        for i in range(trials):
            inputs = _trial_inputs(protocol, first, seed * 1009 + i + 1, reuse=i in (1, 2))
            first = first or inputs
            protocol.trial(inputs)
            done += 1
        if second_shape:
            second = _second_shape_trial(protocol, seed)
            done += second is not None
    except _Failed as failed:
        return Verdict(failed.status, failed.reason, done,
                       reference_ops=protocol.reference_ops,
                       answer_ops=tuple(sorted(protocol.answer_ops)))
    return Verdict("correct", "", done, protocol.worst[0], protocol.worst[1], second,
                   protocol.reference_ops, tuple(sorted(protocol.answer_ops)))


def _second_shape_trial(protocol: Protocol, seed: int) -> dict[str, int] | None:
    """One trial at the first second shape the reference accepts; None if there is none."""
    problem = protocol.problem
    for overrides in second_shape_candidates(problem):
        with problem.sizes_applied(overrides):
            try:
                probe = problem.inputs(seed + 31337, protocol.device)
                protocol.reference(*probe)
            except Exception:
                continue
            protocol.trial(problem.inputs(seed * 1009 + 997, protocol.device))
            return overrides
    return None
