"""The worker process: compiles, verifies and times candidates away from the tuner.

Run as ``python -m eggsearch.backends.worker --fd FD --device cuda|cpu``. It reads JSON requests
from the inherited connection ``FD`` and answers each with one JSON reply (JSON, not pickle: the
worker runs untrusted kernels and the parent must not unpickle what it sends). A kernel that
corrupts the CUDA context makes the worker answer ``fatal: true`` and exit; the parent then
starts a fresh one. A kernel that hangs is killed by the parent's timeout.

Requests: ``{"kind": "info"}``, ``{"kind": "evaluate", ...}``, ``{"kind": "baseline", ...}``,
``{"kind": "round_robin", ...}``, ``{"kind": "exit"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

from eggsearch.records import Measurement, Status

_FATAL_CUDA = ("illegal memory access", "illegal address", "unspecified launch failure",
               "device-side assert", "misaligned address", "CUDA error")


def _short(exc: BaseException, limit: int = 600) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    text = " | ".join(lines[-6:])
    return text if len(text) <= limit else text[: limit - 3] + "..."


_COMPILE_ERRORS = {"CompilationError", "OutOfResources", "CompileTimeAssertionFailure",
                   "ImportError", "SyntaxError", "AttributeError", "NameError"}


def _is_compile_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    if "InterpreterError" in names:
        # The interpreter wraps what the compiler would have rejected, e.g. "NameError(...)".
        return str(exc).split("(", 1)[0].strip() in _COMPILE_ERRORS | {"TypeError"}
    return bool(names & _COMPILE_ERRORS)


def _is_fatal(exc: BaseException) -> bool:
    return any(s in str(exc) for s in _FATAL_CUDA)


class Worker:
    def __init__(self, device: str):
        self.device = device
        self.interpreter = os.environ.get("TRITON_INTERPRET") == "1"
        if self.interpreter:
            from eggsearch.backends.interpreter_fixes import apply_interpreter_fixes

            apply_interpreter_fixes()

    # -- helpers ---------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device != "cpu":
            import torch

            torch.cuda.synchronize()

    def _bench(self, fn, bench: dict):
        from eggsearch.timing import bench_cuda, bench_wallclock

        if self.device == "cpu":
            return bench_wallclock(fn, reps=int(bench.get("reps", 3))), "interpreter-wallclock"
        return bench_cuda(fn, float(bench.get("warmup_ms", 25)),
                          float(bench.get("rep_ms", 100))), "cuda-events"

    @staticmethod
    def _problem(req: dict):
        from eggsearch.ops import get_op
        from eggsearch.ops.base import Problem

        p = req["problem"]
        return get_op(p["op"]), Problem(p["op"], tuple(p["dims"]), tuple(p["shape"]),
                                        p["dtype"], bool(p["allow_tf32"]),
                                        tuple((k, v) for k, v in p.get("options", ())))

    @staticmethod
    def _precision(problem) -> None:
        """PyTorch's matmuls follow the problem's precision contract (TF32 only if allowed)."""
        import torch

        torch.backends.cuda.matmul.allow_tf32 = problem.allow_tf32
        torch.backends.cudnn.allow_tf32 = problem.allow_tf32

    # -- requests --------------------------------------------------------------------------
    def info(self, _req: dict) -> dict:
        import torch
        import triton

        info = {"interpreter": self.interpreter, "device": self.device,
                "torch": torch.__version__, "triton": triton.__version__}
        if self.device == "cpu":
            info["name"] = "Triton CPU interpreter"
            return info
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, compute_capability=[props.major, props.minor],
                    num_sms=props.multi_processor_count,
                    smem_per_block=getattr(props, "shared_memory_per_block_optin", 49152),
                    l2_bytes=getattr(props, "L2_cache_size", 0),
                    total_memory=props.total_memory)
        return info

    def evaluate(self, req: dict) -> dict:
        from eggsearch.structures import load_launcher
        from eggsearch.verify import run_and_check

        op, problem = self._problem(req)
        self._precision(problem)
        config, seeds = req["config"], req["seeds"]
        t0 = time.perf_counter()
        try:
            launcher = load_launcher(req["structure"]["module"], req["structure"]["launcher"])
            inputs = op.make_inputs(problem, seeds[0], self.device)
            out = op.empty_output(problem, self.device)
            launcher(*inputs, out=out, **config)  # compiles on first call
            self._sync()
        except Exception as exc:  # a bad kernel is a value, not an exception
            status = Status.COMPILE_ERROR if _is_compile_error(exc) else Status.RUNTIME_FAULT
            return {**Measurement(status, compile_s=time.perf_counter() - t0,
                                  message=_short(exc)).to_dict(), "fatal": _is_fatal(exc)}
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        worst = None
        try:
            for seed in seeds:
                check = run_and_check(op, problem, launcher, config, seed, self.device)
                if worst is None or not check.ok or check.rel_err > worst.rel_err:
                    worst = check
                if not check.ok:
                    break
        except Exception as exc:
            return {**Measurement(Status.RUNTIME_FAULT, compile_s=compile_s,
                                  verify_s=time.perf_counter() - t0,
                                  message=_short(exc)).to_dict(), "fatal": _is_fatal(exc)}
        verify_s = time.perf_counter() - t0
        if not worst.ok:
            return Measurement(Status.INCORRECT, compile_s=compile_s, verify_s=verify_s,
                               max_abs_err=_finite(worst.max_abs_err),
                               rel_err=_finite(worst.rel_err), message=worst.message).to_dict()
        t0 = time.perf_counter()
        try:
            (median, p20, p80, _), timer = self._bench(
                lambda: launcher(*inputs, out=out, **config), req.get("bench", {}))
        except Exception as exc:
            return {**Measurement(Status.RUNTIME_FAULT, compile_s=compile_s, verify_s=verify_s,
                                  message=_short(exc)).to_dict(), "fatal": _is_fatal(exc)}
        return Measurement(Status.OK, median, p20, p80, compile_s, verify_s,
                           time.perf_counter() - t0, worst.max_abs_err, worst.rel_err,
                           timer=timer).to_dict()

    def baseline(self, req: dict) -> dict:
        """PyTorch eager on the same inputs, timed the same way; its own error is recorded."""
        from eggsearch.verify import compare_all

        op, problem = self._problem(req)
        self._precision(problem)
        inputs = op.make_inputs(problem, req["seeds"][0], self.device)
        t0 = time.perf_counter()
        ref, truth = op.reference(*inputs), op.truth(*inputs)
        check = compare_all(ref if isinstance(ref, tuple) else (ref,),
                            truth if isinstance(truth, tuple) else (truth,),
                            op.tolerance(problem))
        verify_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        (median, p20, p80, _), timer = self._bench(lambda: op.reference(*inputs),
                                                    req.get("bench", {}))
        return Measurement(Status.OK, median, p20, p80, 0.0, verify_s, time.perf_counter() - t0,
                           _finite(check.max_abs_err), _finite(check.rel_err),
                           message="" if check.ok else f"PyTorch itself: {check.message}",
                           timer=timer).to_dict()

    def round_robin(self, req: dict) -> dict:
        """Candidates (and PyTorch eager, with ``"pytorch": true``) timed in rounds on the same
        inputs: each round times every one once, in an order rotated by one and reversed every
        other round, so clock and thermal drift (a GPU at its power limit slows down over
        minutes) falls on all alike. Replies ``rounds_ms`` (per candidate, PyTorch last: one
        median per round, or None for a candidate that failed) and ``errors``.
        """
        from eggsearch.structures import load_launcher

        op, problem = self._problem(req)
        self._precision(problem)
        inputs = op.make_inputs(problem, req["seeds"][0], self.device)
        out = op.empty_output(problem, self.device)
        fns, errors = [], {}
        for i, c in enumerate(req["candidates"]):
            try:
                launcher = load_launcher(c["structure"]["module"], c["structure"]["launcher"])
                fn = (lambda f, cfg: lambda: f(*inputs, out=out, **cfg))(launcher, c["config"])
                fn()  # compiled here, not in the first round
                self._sync()
                fns.append((i, fn))
            except Exception as exc:
                if _is_fatal(exc):
                    return {"error": _short(exc), "fatal": True}
                errors[i] = _short(exc)
        n = len(req["candidates"])
        if req.get("pytorch"):
            fns.append((n, lambda: op.reference(*inputs)))
        rounds_ms: list[list[float] | None] = [None] * (n + bool(req.get("pytorch")))
        for i, _ in fns:
            rounds_ms[i] = []
        timer = ""
        for r in range(int(req.get("rounds", 5))):
            order = fns[r % len(fns):] + fns[:r % len(fns)] if fns else []
            for i, fn in (order if r % 2 == 0 else order[::-1]):
                (median, _, _, _), timer = self._bench(fn, req.get("bench", {}))
                rounds_ms[i].append(median)
        return {"rounds_ms": rounds_ms, "errors": {str(k): v for k, v in errors.items()},
                "timer": timer}


def _finite(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


def serve_requests(conn: Connection, handlers: dict[str, Callable[[dict], dict]],
                   on_error: Callable[[Exception], dict]) -> None:
    """Answer JSON requests ``{"kind": ..., ...}`` on ``conn`` with ``handlers[kind](req)``
    until the parent hangs up or sends ``{"kind": "exit"}``. A handler that raises is answered
    ``on_error(exc)``; a reply with ``"fatal": true`` ends the process after it is sent (the
    CUDA context is unusable; the parent starts a fresh worker). Shared with the problem
    worker (``eggsearch/problems/worker.py``)."""
    while True:
        try:
            req = json.loads(conn.recv_bytes())
        except EOFError:
            return
        if req.get("kind") == "exit":
            return
        try:
            reply = handlers[req["kind"]](req)
        except Exception as exc:
            reply = on_error(exc)
        conn.send_bytes(json.dumps(reply, default=str).encode())
        if reply.get("fatal"):
            os._exit(3)


def serve(conn: Connection, worker: Worker) -> None:
    serve_requests(conn, {"info": worker.info, "evaluate": worker.evaluate,
                          "baseline": worker.baseline, "round_robin": worker.round_robin},
                   lambda exc: {**Measurement(Status.RUNTIME_FAULT,
                                              message=_short(exc)).to_dict(),
                                "fatal": _is_fatal(exc)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    serve(Connection(args.fd), Worker(args.device))


if __name__ == "__main__":
    main()
