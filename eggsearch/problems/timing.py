"""Timing a model's forward so that work hidden from the timer still counts.

On a GPU each repetition flushes L2, synchronizes the whole device (every stream), records a
CUDA event pair around one call and synchronizes the whole device again; a wall clock runs
around the call and the second synchronization. The reported time of a repetition is the larger
of the event time and the synchronized wall time less the cost of an empty call, so work queued
on a side stream (which the events on the current stream do not see) is still counted, and an
answer whose event time is far below its synchronized wall time is flagged
(``outside_stream``). On the CPU interpreter the time is plain wall clock.

The clock, the synchronization and the event class are bound here when this module is imported,
before any answer is, so an answer that patches ``time.perf_counter`` or ``torch.cuda`` does not
change what is measured (and :class:`eggsearch.problems.anticheat.Integrity` reports the patch).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

_perf_counter = time.perf_counter
_cuda_sync = torch.cuda.synchronize
_Event = torch.cuda.Event
_elapsed = torch.cuda.Event.elapsed_time
_record = torch.cuda.Event.record

FLUSH_BYTES = 256 * 1024 * 1024
# Side-stream work: events below half the synchronized wall time, by more than this much.
OUTSIDE_STREAM_MS = 0.02


@dataclass(frozen=True)
class Timing:
    """Times in milliseconds: median and 20th/80th percentiles of the reported per-call time.

    ``events_ms`` and ``wall_ms`` are the medians of the two clocks (GPU only for events);
    ``overhead_ms`` is the synchronized wall time of an empty call.
    """

    time_ms: float
    p20_ms: float
    p80_ms: float
    reps: int
    timer: str
    wall_ms: float
    events_ms: float | None = None
    overhead_ms: float = 0.0
    outside_stream: bool = False


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    values = sorted(values)
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), q[1], q[7]


def time_forward(fn: Callable[[], object], device: str, reps: int | None = None,
                 rep_ms: float = 200.0) -> Timing:
    """Time ``fn`` (one forward on fixed inputs) on ``device`` ("cuda..." or "cpu")."""
    if not device.startswith("cuda"):
        return _time_cpu(fn, reps or 3)
    return _time_cuda(fn, reps, rep_ms)


def _time_cpu(fn: Callable[[], object], reps: int) -> Timing:
    fn()
    walls = []
    for _ in range(reps):
        t0 = _perf_counter()
        fn()
        walls.append((_perf_counter() - t0) * 1e3)
    median, p20, p80 = _quantiles(walls)
    return Timing(median, p20, p80, reps, "interpreter-wallclock", median)


def _synced_call(fn: Callable[[], object], flush: torch.Tensor | None) -> tuple[float, float]:
    """(event ms, synchronized wall ms) of one call."""
    start, end = _Event(enable_timing=True), _Event(enable_timing=True)
    if flush is not None:
        flush.zero_()
    _cuda_sync()
    t0 = _perf_counter()
    _record(start)
    fn()
    _record(end)
    _cuda_sync()
    wall = (_perf_counter() - t0) * 1e3
    return _elapsed(start, end), wall


def _time_cuda(fn: Callable[[], object], reps: int | None, rep_ms: float) -> Timing:
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    overhead = statistics.median(_synced_call(lambda: None, None)[1] for _ in range(20))
    fn()
    _cuda_sync()
    estimate = max(statistics.median(_synced_call(fn, flush)[1] for _ in range(3)), 1e-3)
    if reps is None:
        reps = min(1000, max(10, int(rep_ms / estimate)))
    for _ in range(max(1, min(reps, int(25.0 / estimate)))):  # warm-up
        fn()
    events, walls, per_call = [], [], []
    for _ in range(reps):
        ev, wall = _synced_call(fn, flush)
        events.append(ev)
        walls.append(wall)
        per_call.append(max(ev, wall - overhead))
    median, p20, p80 = _quantiles(per_call)
    ev_med, wall_med = statistics.median(events), statistics.median(walls)
    hidden = wall_med - overhead - ev_med
    outside = ev_med < 0.5 * (wall_med - overhead) and hidden > OUTSIDE_STREAM_MS
    return Timing(median, p20, p80, reps, "cuda-events+device-sync", wall_med, ev_med,
                  overhead, outside)


def run_batch(fn: Callable[[], object], n: int, device: str) -> None:
    """``n`` calls back to back, then a whole-device synchronization (timed by the parent)."""
    for _ in range(n):
        fn()
    if device.startswith("cuda"):
        _cuda_sync()
