"""The cost of a problem, measured on PyTorch's meta device: FLOPs and the fewest bytes.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions,
attention; elementwise work is not counted, so such problems are bound by memory). The fewest
bytes are the inputs, parameters and buffers read once and the outputs written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eggsearch.problems.loader import ProblemModule, load_problem


@dataclass(frozen=True)
class Cost:
    flops: float
    min_bytes: float
    dtype: str  # "fp32", "fp16" or "bf16": the precision the peak rate is looked up for


def _nbytes(values) -> int:
    import torch

    total = 0
    for v in values:
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, (list, tuple)):
            total += _nbytes(v)
    return total


def problem_cost(problem: ProblemModule) -> Cost:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"), torch.no_grad():
        model = problem.build(0, "meta")
        inputs = problem.inputs(0, "meta")
        with FlopCounterMode(display=False) as counter:
            out = model(*inputs)
    state = list(model.parameters()) + list(model.buffers())
    floats = [x for x in inputs if isinstance(x, torch.Tensor) and x.is_floating_point()]
    dtype = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
        floats[0].dtype if floats else torch.float32, "fp32")
    return Cost(float(counter.get_total_flops()),
                float(_nbytes(inputs) + _nbytes(state) + _nbytes([out])), dtype)


def roofline_bound_ms(path: Path, small: bool, device_name: str) -> float | None:
    """The fastest physically possible time on the named GPU, or None where unknown.

    Exact fp32 may run as three TF32 products on tensor cores, so its rate is the larger of the
    fp32 peak and a third of the TF32 peak.
    """
    from eggsearch.hardware import load_hardware, spec_for_device

    hw = spec_for_device({"name": device_name}, load_hardware())
    if hw.peak_bandwidth is None:
        return None
    try:
        cost = problem_cost(load_problem(path, small))
    except Exception:  # a model the meta device cannot run: no bound, no flag
        return None
    peaks = hw.peak_flops
    if cost.dtype == "fp32":
        rate = max(peaks.get("fp32", 0.0), peaks.get("tf32", 0.0) / 3) or None
    else:
        rate = peaks.get(cost.dtype)
    t_compute = cost.flops / rate if rate else 0.0
    return max(t_compute, cost.min_bytes / hw.peak_bandwidth) * 1e3
