"""The physical limit of a problem on a GPU: its FLOPs over the matrix/vector rate and its
minimum bytes over the memory bandwidth, whichever takes longer.

The rates are datasheet peaks (upper bounds), so a measured time below the bound is a bug in the
kernel or the measurement, never a win. "% of copy bandwidth" is reported against the copy rate
measured on this project's machines, which is what memory-bound targets are stated in.
"""

from __future__ import annotations

from dataclasses import dataclass

from eggsearch.hardware import HardwareSpec
from eggsearch.ops.base import OpSpec, Problem


@dataclass(frozen=True)
class Roofline:
    flops: float
    min_bytes: float
    bound_s: float | None          # None: the hardware's peak rates are unknown
    compute_rate: float | None
    limiter: str                   # "memory" or "compute" (or "unknown")

    def fraction(self, time_s: float) -> float | None:
        """Share of the roofline achieved (1.0 = at the physical limit)."""
        return None if self.bound_s is None or time_s <= 0 else self.bound_s / time_s

    def below_bound(self, time_s: float) -> bool:
        return self.bound_s is not None and time_s < self.bound_s


def compute_rate(op: OpSpec, problem: Problem, hw: HardwareSpec) -> float | None:
    """The peak rate the op's arithmetic can run at under its precision contract."""
    peaks = hw.peak_flops
    if not op.tensor_cores:  # vector arithmetic (reductions, elementwise) on the CUDA cores
        return peaks.get("fp32")
    if problem.dtype in ("fp16", "bf16"):
        return peaks.get(problem.dtype)
    if problem.allow_tf32:
        return peaks.get("tf32")
    # Exact fp32 may run as plain FMA or as three TF32 products (tf32x3): the faster bounds.
    candidates = [peaks.get("fp32"), peaks["tf32"] / 3 if "tf32" in peaks else None]
    rates = [r for r in candidates if r]
    return max(rates) if rates else None


def roofline(op: OpSpec, problem: Problem, hw: HardwareSpec) -> Roofline:
    flops, nbytes = op.flops(problem), op.min_bytes(problem)
    rate = compute_rate(op, problem, hw)
    if rate is None or hw.peak_bandwidth is None:
        return Roofline(flops, nbytes, None, rate, "unknown")
    t_compute, t_memory = flops / rate, nbytes / hw.peak_bandwidth
    return Roofline(flops, nbytes, max(t_compute, t_memory), rate,
                    "compute" if t_compute >= t_memory else "memory")
