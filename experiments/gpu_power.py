"""Clock and power while a kernel runs back to back: shared by the experiments that ask whether
a kernel's speed is set by its work or by the clock its energy lets the GPU hold (a GPU at its
power cap lowers the clock)."""

from __future__ import annotations

import statistics
import subprocess
import time


def power(entries, seconds: float) -> list[dict]:
    """Each entry called back to back for ``seconds`` while nvidia-smi samples the SM clock
    and the board power every 50 ms: under a power cap, a kernel's speed is also a matter of
    the clock its energy per step lets the GPU hold."""
    import torch

    rows = []
    for title, fn in entries:
        fn()
        torch.cuda.synchronize()
        smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw",
                                "--format=csv,noheader,nounits", "-lms", "50"],
                               stdout=subprocess.PIPE, text=True)
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(10):
                fn()
            torch.cuda.synchronize()
            calls += 10
        wall = time.perf_counter() - t0
        smi.terminate()
        samples = [line.split(",") for line in smi.communicate()[0].splitlines()[2:-1]]
        mhz = statistics.mean(float(a) for a, _ in samples) if samples else float("nan")
        watts = statistics.mean(float(b) for _, b in samples) if samples else float("nan")
        rows.append(dict(what=title, ms_per_call=wall / calls * 1e3, sm_mhz=mhz, watts=watts,
                         samples=len(samples)))
    return rows
