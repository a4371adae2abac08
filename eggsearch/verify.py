"""Correctness of one candidate: fresh inputs, a poisoned output, a float64 truth, two checks.

Used by the worker process (before any timing) and directly by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from eggsearch.ops.base import Launcher, OpSpec, Problem, Tolerance


@dataclass(frozen=True)
class Check:
    """Outcome of comparing one output against the truth."""

    ok: bool
    max_abs_err: float
    rel_err: float
    message: str = ""


def compare(out: torch.Tensor, truth: torch.Tensor, tol: Tolerance) -> Check:
    """Elementwise allclose and normwise relative error against a float64 truth.

    NaN never passes: the output is poisoned with NaN before the kernel runs, so an element the
    kernel did not write shows up here as non-finite.
    """
    import torch

    if out.shape != truth.shape:
        return Check(False, float("inf"), float("inf"),
                     f"output shape {tuple(out.shape)} != expected {tuple(truth.shape)}")
    out64 = out.detach().double()
    finite = torch.isfinite(out64)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        return Check(False, float("inf"), float("inf"),
                     f"{n_bad} of {out.numel()} output elements are NaN/inf "
                     "(unwritten, or overflow)")
    diff = (out64 - truth).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    ref_norm = float(truth.norm())
    rel = float(diff.norm()) / ref_norm if ref_norm > 0 else float(diff.norm())
    outside = diff > (tol.atol + tol.rtol * truth.abs())
    if bool(outside.any()):
        idx = int(outside.flatten().nonzero()[0])
        return Check(False, max_abs, rel,
                     f"{int(outside.sum())} elements outside atol={tol.atol:g} rtol={tol.rtol:g}"
                     f" (first at flat index {idx}: got {float(out64.flatten()[idx]):.6g}, "
                     f"expected {float(truth.flatten()[idx]):.6g})")
    if rel > tol.max_rel_err:
        return Check(False, max_abs, rel,
                     f"relative error {rel:.3g} > {tol.max_rel_err:g}")
    return Check(True, max_abs, rel)


def run_and_check(op: OpSpec, problem: Problem, launcher: Launcher, config: dict, seed: int,
                  device: str) -> Check:
    """Run ``launcher`` once on fresh inputs for ``seed`` and check its output and inputs."""
    import torch

    inputs = op.make_inputs(problem, seed, device)
    before = [t.clone() for t in inputs]
    truth = op.truth(*inputs)
    out = op.empty_output(problem, device)
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        poison(o)
    launcher(*inputs, out=out, **config)
    if device != "cpu":
        torch.cuda.synchronize()
    for i, (a, b) in enumerate(zip(inputs, before)):
        if not torch.equal(a, b):
            return Check(False, float("inf"), float("inf"), f"input {i} was modified in place")
    return compare_all(outs, truth if isinstance(truth, tuple) else (truth,),
                       op.tolerance(problem))


def poison(t: torch.Tensor) -> None:
    """Fill an output with values no kernel computes: NaN for floats, the minimum for ints."""
    import torch

    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(torch.iinfo(t.dtype).min)


def compare_all(outs, truths, tol: Tolerance) -> Check:
    """:func:`compare` over several outputs; the first failure, else the worst error."""
    if len(outs) != len(truths):
        return Check(False, float("inf"), float("inf"),
                     f"{len(outs)} outputs, expected {len(truths)}")
    worst = None
    for i, (o, t) in enumerate(zip(outs, truths)):
        check = compare(o, t, tol)
        if not check.ok:
            prefix = f"output {i}: " if len(outs) > 1 else ""
            return Check(False, check.max_abs_err, check.rel_err, prefix + check.message)
        if worst is None or check.rel_err > worst.rel_err:
            worst = check
    return worst
