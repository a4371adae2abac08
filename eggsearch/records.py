"""Values that cross process and module boundaries: statuses and measurements."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum


class Status(str, Enum):
    """Outcome of one trial. Only ``OK`` counts as a result."""

    OK = "ok"
    PRUNED = "pruned"                # broke a constraint; never compiled
    DUPLICATE = "duplicate"          # same config as an earlier trial; answered from records
    COMPILE_ERROR = "compile_error"
    RUNTIME_FAULT = "runtime_fault"  # raised, or crashed the worker (illegal address, ...)
    TIMEOUT = "timeout"
    INCORRECT = "incorrect"          # wrong values, unwritten elements, mutated inputs
    SUSPICIOUS = "suspicious"        # faster than the physical bound: a bug, never a win

    @property
    def failed(self) -> bool:
        return self not in (Status.OK, Status.PRUNED, Status.DUPLICATE)


@dataclass(frozen=True)
class Measurement:
    """What the backend reports for one candidate (or for the PyTorch baseline).

    Times are in milliseconds (median and 20th/80th percentiles); phases in seconds. ``timer``
    says what the times are: ``cuda-events`` on a GPU, ``interpreter-wallclock`` on Triton's CPU
    interpreter (never GPU performance).
    """

    status: Status
    time_ms: float | None = None
    p20_ms: float | None = None
    p80_ms: float | None = None
    compile_s: float = 0.0
    verify_s: float = 0.0
    bench_s: float = 0.0
    max_abs_err: float | None = None
    rel_err: float | None = None
    message: str = ""
    timer: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["status"] = Status(kw["status"])
        return cls(**kw)

    def with_status(self, status: Status, message: str) -> Measurement:
        return Measurement(**{**self.__dict__, "status": status, "message": message})
