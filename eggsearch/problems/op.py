"""A problem file as an :class:`~eggsearch.ops.base.OpSpec`, so ``run --problem`` reuses the
study, the isolated worker and its verification.

The op's name is ``problem:<absolute path>``; :func:`eggsearch.ops.get_op` rebuilds it from
that name in the worker. The problem's dims are its size constants (``batch_size``...), its shape
their values. An op's inputs are the forward's tensors from ``get_inputs()`` under the trial's
seed, then the model's parameters and buffers (built once per size from ``get_init_inputs()``
after the verifier's init seed); the reference is ``Model.forward`` through
``torch.func.functional_call``, so the study's launchers see the weights as plain inputs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from eggsearch.ops.base import DEFAULT_TOLERANCES, OpSpec, Problem
from eggsearch.problems.loader import ProblemModule, load_problem

PREFIX = "problem:"


def flat_outputs(out) -> tuple:
    if isinstance(out, (list, tuple)):
        return tuple(t for o in out for t in flat_outputs(o))
    return (out,)


class ProblemOp(OpSpec):
    dtypes = ("fp16", "bf16", "fp32")
    structures: dict = {}

    def __init__(self, path: Path | str):
        from eggsearch.problems.verifier import INIT_SEED

        self.path = Path(path).resolve()
        self.name = f"{PREFIX}{self.path}"
        self.summary = f"the problem file {self.path.name}"
        self.module: ProblemModule = load_problem(self.path)
        self.dims = tuple(self.module.base_sizes)
        self.default_shape = tuple(self.module.base_sizes.values())
        small = load_problem(self.path, small=True)
        self.interpreter_shape = tuple(small.sizes.values())
        self.init_seed = INIT_SEED
        self._models: dict[tuple, torch.nn.Module] = {}
        with torch.device("meta"):
            self._meta_inputs = self.module.inputs(0, "meta")
        self.uses_tf32 = True

    # -- sizes and state -----------------------------------------------------------------
    def _sizes(self, problem: Problem) -> dict[str, int]:
        return dict(zip(problem.dims, problem.shape))

    def model(self, problem: Problem, device: str) -> torch.nn.Module:
        key = (problem.shape, device)
        if key not in self._models:
            with self.module.sizes_applied(self._sizes(problem)):
                self._models[key] = self.module.build(self.init_seed, device)
        return self._models[key]

    def state(self, problem: Problem, device: str) -> dict[str, torch.Tensor]:
        m = self.model(problem, device)
        return {**dict(m.named_parameters()), **dict(m.named_buffers())}

    def make_inputs(self, problem: Problem, seed: int, device: str):
        with self.module.sizes_applied(self._sizes(problem)):
            raw = self.module.inputs(seed, device)
        tensors = [x for x in raw if isinstance(x, torch.Tensor)]
        state = [t.detach() for t in self.state(problem, device).values()]
        self._current = (problem, device, raw)  # reference() and truth() follow make_inputs()
        return tuple(tensors + state)

    def _call(self, tensors):
        """Model.forward on ``tensors`` (the inputs, then the state), which replace the model's
        own parameters and buffers; the Python scalars among the inputs are the file's."""
        problem, device, raw = self._current
        n = sum(isinstance(x, torch.Tensor) for x in raw)
        names = list(self.state(problem, device))
        state = dict(zip(names, tensors[n:]))
        args, it = [], iter(tensors[:n])
        for x in raw:
            args.append(next(it) if isinstance(x, torch.Tensor) else x)
        with torch.no_grad():
            out = torch.func.functional_call(self.model(problem, device), state, tuple(args))
        outs = flat_outputs(out)
        return outs[0] if len(outs) == 1 else outs

    # -- OpSpec --------------------------------------------------------------------------
    def reference(self, *tensors):
        return self._call(tensors)

    def truth(self, *tensors):
        return self._call([t.double() if t.is_floating_point() else t for t in tensors])

    def outputs(self, problem: Problem):
        with torch.device("meta"), torch.no_grad(), self.module.sizes_applied(
                self._sizes(problem)):
            out = self.module.build(0, "meta")(*self.module.inputs(0, "meta"))
        return [(tuple(t.shape), t.dtype) for t in flat_outputs(out)]

    def output_shape(self, problem: Problem):
        return self.outputs(problem)[0][0]

    def empty_output(self, problem: Problem, device: str):
        outs = tuple(torch.empty(s, dtype=d, device=device) for s, d in self.outputs(problem))
        return outs[0] if len(outs) == 1 else outs

    def tolerance(self, problem: Problem):
        return DEFAULT_TOLERANCES[problem.dtype]

    def _cost(self, problem: Problem):
        from eggsearch.problems.cost import problem_cost

        with self.module.sizes_applied(self._sizes(problem)):
            return problem_cost(self.module)

    def flops(self, problem: Problem) -> float:
        return self._cost(problem).flops

    def min_bytes(self, problem: Problem) -> float:
        return self._cost(problem).min_bytes

    def dtype_name(self) -> str:
        floats = [x for x in self._meta_inputs
                  if isinstance(x, torch.Tensor) and x.is_floating_point()]
        dt = floats[0].dtype if floats else torch.float32
        return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dt, "fp32")


def problem_op(name: str) -> ProblemOp:
    """The op for ``problem:<path>`` (the worker's side of :func:`eggsearch.ops.get_op`)."""
    return ProblemOp(name[len(PREFIX):])
