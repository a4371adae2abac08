"""The problem worker: loads a problem (and an untrusted answer), verifies and times them.

Run as ``python -m eggsearch.problems.worker --fd FD --device cuda|cpu``; JSON requests and
replies over the inherited connection, as in :mod:`eggsearch.backends.worker`. The parent uses
one worker for the answer and a fresh one, which never imports the answer, for the reference and
``torch.compile``, so an answer cannot slow its baseline down.

Requests:
    ``{"kind": "load", "problem": PATH, "small": BOOL, "solution": PATH or null}``
    ``{"kind": "verify", "trials": N, "seed": S}``
    ``{"kind": "time", "which": "answer"|"reference"|"compile", "seed": S}``
    ``{"kind": "batch", "which": ..., "n": N}`` (the parent times it with its own clock)
    ``{"kind": "exit"}``
Replies carry ``usage_error`` for a malformed problem, ``error`` for a failure of the answer.
"""

from __future__ import annotations

import argparse
import os
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection

import torch

from eggsearch.backends.worker import serve_requests
from eggsearch.errors import UsageError
from eggsearch.problems import timing, verifier  # noqa: F401 - bound before any answer
from eggsearch.problems.anticheat import Integrity
from eggsearch.problems.loader import describe, load_problem, load_solution, one_line

# The run's precision contract: exact fp32 in PyTorch's reference (no TF32 anywhere).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


class ProblemWorker:
    def __init__(self, device: str):
        self.device = device
        if os.environ.get("TRITON_INTERPRET") == "1":
            from eggsearch.backends.interpreter_fixes import apply_interpreter_fixes

            apply_interpreter_fixes()
        import triton  # noqa: F401 - imported before the snapshot, as an answer would

        self.problem = None
        self.answer_cls = None
        self.models: dict[str, object] = {}
        self.integrity: Integrity | None = None

    def load(self, req: dict) -> dict:
        try:
            self.problem = load_problem(req["problem"], bool(req.get("small")))
            inputs = self.problem.inputs(0, self.device)
            with torch.no_grad():
                out = self.problem.build(verifier.INIT_SEED, self.device)(*inputs)
        except UsageError as exc:
            return {"usage_error": str(exc)}
        except Exception as exc:
            return {"usage_error": f"{req['problem']}: Model.forward raised {one_line(exc)}"}
        info = {"sizes": self.problem.sizes, "inputs": describe(inputs),
                "output": describe(out), "device": self.device, **_device_info(self.device)}
        if req.get("solution"):
            self.integrity = Integrity.capture()  # after the problem, before the answer
            try:
                self.answer_cls = load_solution(req["solution"])
            except UsageError as exc:
                return {**info, "error": str(exc)}
        return info

    def verify(self, req: dict) -> dict:
        verdict = verifier.verify(self.problem, self.answer_cls, self.device, self.integrity,
                                  trials=int(req.get("trials", verifier.MIN_TRIALS)),
                                  seed=int(req.get("seed", 0)))
        return asdict(verdict)

    def _model(self, which: str):
        if which not in self.models:
            if which == "answer":
                model = self.problem.build(verifier.INIT_SEED, self.device, self.answer_cls)
            else:
                model = self.problem.build(verifier.INIT_SEED, self.device)
                if which == "compile":
                    model = torch.compile(model)
            self.models[which] = model
        return self.models[which]

    def _call(self, which: str, seed: int):
        model = self._model(which)
        inputs = self.problem.inputs(seed, self.device)

        def call():
            with torch.no_grad():
                return model(*inputs)

        return call

    def time(self, req: dict) -> dict:
        which = req["which"]
        try:
            call = self._call(which, int(req.get("seed", 0)))
            result = timing.time_forward(call, self.device, req.get("reps"))
        except Exception as exc:
            return {"error": f"{which} failed while timed: {one_line(exc)}"}
        reply = asdict(result)
        if which == "answer" and self.integrity is not None:
            found = self.integrity.violations()
            if found:
                reply["cheat"] = f"while timed, the answer {found[0]}"
        return reply

    def batch(self, req: dict) -> dict:
        call = self._call(req["which"], int(req.get("seed", 0)))
        call()
        timing.run_batch(call if not req.get("noop") else (lambda: None), int(req["n"]),
                         self.device)
        return {"done": int(req["n"])}


def _device_info(device: str) -> dict:
    if not device.startswith("cuda"):
        return {"name": "Triton CPU interpreter", "interpreter": True}
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "interpreter": False,
            "compute_capability": [props.major, props.minor],
            "num_sms": props.multi_processor_count}


def _error_reply(exc: Exception) -> dict:
    if isinstance(exc, UsageError):
        return {"usage_error": str(exc)}
    lines = traceback.format_exception_only(type(exc), exc)
    return {"error": " | ".join(ln.strip() for ln in lines)[-600:]}


def serve(conn: Connection, worker: ProblemWorker) -> None:
    serve_requests(conn, {"load": worker.load, "verify": worker.verify, "time": worker.time,
                          "batch": worker.batch}, _error_reply)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    serve(Connection(args.fd), ProblemWorker(args.device))


if __name__ == "__main__":
    main()
