"""Timing a callable: CUDA events with an L2 flush on the GPU, wall clock on the interpreter.

The GPU timer follows ``triton.testing.do_bench``: warm up, then for each repetition flush L2 by
writing a buffer larger than it, record an event pair around one call, and report the median
with the 20th and 80th percentiles. The device is synchronized before the events are read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

FLUSH_BYTES = 256 * 1024 * 1024


def _quantiles(times: list[float]) -> tuple[float, float, float]:
    times = sorted(times)
    if len(times) == 1:
        return times[0], times[0], times[0]
    q = statistics.quantiles(times, n=10, method="inclusive")
    return statistics.median(times), q[1], q[7]


def bench_cuda(fn: Callable[[], object], warmup_ms: float = 25.0, rep_ms: float = 100.0,
               min_reps: int = 10, max_reps: int = 1000) -> tuple[float, float, float, int]:
    """Median, p20 and p80 in milliseconds, and the number of timed repetitions."""
    import torch

    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    n_warmup = max(1, int(warmup_ms / estimate))
    n_rep = min(max_reps, max(min_reps, int(rep_ms / estimate)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    for _ in range(n_warmup):
        fn()
    for i in range(n_rep):
        flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    median, p20, p80 = _quantiles([s.elapsed_time(e) for s, e in zip(starts, ends)])
    return median, p20, p80, n_rep


def bench_wallclock(fn: Callable[[], object], reps: int = 3) -> tuple[float, float, float, int]:
    """Wall-clock timing for the CPU interpreter (after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    median, p20, p80 = _quantiles(times)
    return median, p20, p80, reps
