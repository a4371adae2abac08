"""Backends that run every candidate in a worker subprocess (see ``worker.py``).

The parent never imports a candidate. A timeout kills the worker; a crash or a corrupted CUDA
context ends it; either way the next request starts a fresh one and the study goes on.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict
from multiprocessing import Pipe
from pathlib import Path

from eggsearch.backends.base import Backend
from eggsearch.ops.base import Problem
from eggsearch.records import Measurement, Status
from eggsearch.structures import Structure

log = logging.getLogger(__name__)


class WorkerProcess:
    """One worker subprocess and its connection; restarted on demand."""

    def __init__(self, device: str, env: dict[str, str], log_path: Path | None = None):
        self.device, self.env, self.log_path = device, env, log_path
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.restarts = 0

    def _start(self) -> None:
        parent, child = Pipe()
        log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eggsearch.backends.worker", "--fd", str(child.fileno()),
                 "--device", self.device],
                pass_fds=[child.fileno()], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=log_file)
        finally:
            child.close()
            if self.log_path:
                log_file.close()
        self.conn = parent

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn = None, None

    def request(self, message: dict, timeout: float) -> dict:
        """Send one request; a hang or a death comes back as a failed measurement."""
        if not self.alive():
            if self.proc is not None:
                self.restarts += 1
            self.kill()
            self._start()
        self.conn.send_bytes(json.dumps(message).encode())
        if not self.conn.poll(timeout):
            self.kill()
            return Measurement(Status.TIMEOUT, message=f"no answer within {timeout:g} s; "
                               "worker killed").to_dict()
        try:
            reply = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.proc.wait()
            code = self.proc.returncode
            self.kill()
            return Measurement(Status.RUNTIME_FAULT,
                               message=f"worker died (exit code {code})").to_dict()
        if reply.get("fatal"):
            self.proc.wait(timeout=30)
            self.kill()
        return reply

    def close(self) -> None:
        if self.alive():
            try:
                self.conn.send_bytes(json.dumps({"kind": "exit"}).encode())
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class WorkerBackend(Backend):
    """Shared by the GPU and interpreter backends; they differ in device, env and timer."""

    device = "cuda"
    interpret = False
    startup_timeout = 300.0

    def __init__(self, trial_timeout: float = 60.0, log_path: Path | None = None,
                 bench: dict | None = None):
        self.trial_timeout = trial_timeout
        self.bench = bench or {}
        env = dict(os.environ)
        env["TRITON_INTERPRET"] = "1" if self.interpret else "0"
        # The worker must import this very eggsearch, wherever it was run from.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.worker = WorkerProcess(self.device, env, log_path)

    def start(self) -> dict:
        t0 = time.perf_counter()
        reply = self.worker.request({"kind": "info"}, self.startup_timeout)
        if "name" not in reply:
            raise RuntimeError(f"the {self.name} worker did not start: {reply.get('message')}")
        log.info("worker up in %.1f s on %s", time.perf_counter() - t0, reply["name"])
        return reply

    def _problem_msg(self, problem: Problem) -> dict:
        return asdict(problem)

    def evaluate(self, problem: Problem, structure: Structure, config: dict,
                 seeds: tuple[int, ...]) -> Measurement:
        reply = self.worker.request(
            {"kind": "evaluate", "problem": self._problem_msg(problem),
             "structure": structure.ref(), "config": config, "seeds": list(seeds),
             "bench": self.bench}, self.trial_timeout)
        return Measurement.from_dict(reply)

    def baseline(self, problem: Problem, seed: int) -> Measurement:
        reply = self.worker.request(
            {"kind": "baseline", "problem": self._problem_msg(problem), "seeds": [seed],
             "bench": self.bench}, self.startup_timeout)
        return Measurement.from_dict(reply)

    def round_robin(self, problem: Problem, candidates: list[tuple[Structure, dict]],
                    seed: int, rounds: int, pytorch: bool = False) -> dict:
        """Time ``candidates`` (and PyTorch) in alternating rounds (``Worker.round_robin``).

        Returns ``{"rounds_ms": [...], "errors": {index: message}, "timer": ...}``, or
        ``{"error": ...}`` when the worker failed as a whole.
        """
        bench = {**self.bench, "rep_ms": min(float(self.bench.get("rep_ms", 100)), 50.0)}
        n = len(candidates) + pytorch
        reply = self.worker.request(
            {"kind": "round_robin", "problem": self._problem_msg(problem),
             "candidates": [{"structure": s.ref(), "config": c} for s, c in candidates],
             "pytorch": pytorch, "seeds": [seed], "rounds": rounds, "bench": bench},
            self.trial_timeout * n * max(1, rounds))
        if "rounds_ms" not in reply:
            return {"error": reply.get("error") or reply.get("message") or "no answer"}
        reply["errors"] = {int(k): v for k, v in reply.get("errors", {}).items()}
        return reply

    def close(self) -> None:
        self.worker.close()


class GPUBackend(WorkerBackend):
    name = "gpu"
    device = "cuda"
    interpret = False
    gpu_times = True


class InterpreterBackend(WorkerBackend):
    """Triton's CPU interpreter: correctness on small shapes; its times are not GPU times."""

    name = "interpreter"
    device = "cpu"
    interpret = True
    gpu_times = False
