"""The operator interface: what eggsearch must know about an op to search kernels for it.

An op lives in one file, ``eggsearch/ops/<name>.py``, holding a subclass of :class:`OpSpec` and
the Triton structures (templates) for it. Its tunables are declared in
``search_spaces/<name>.yaml``; the op name is the join key across folders.

Lifecycle:
    1. The CLI resolves the op by name (:func:`eggsearch.ops.get_op`) and builds a
       :class:`Problem` with :meth:`OpSpec.problem` (shape and dtype parsed and checked here).
    2. The tuner reads :attr:`OpSpec.structures` and evaluates constraints over
       :meth:`OpSpec.variables`.
    3. In the isolated worker process, for each seed: :meth:`OpSpec.make_inputs`, a float64 truth
       from :meth:`OpSpec.truth`, an output from :meth:`OpSpec.empty_output` poisoned with NaN,
       then ``launcher(*inputs, out=out, **config)``. The PyTorch baseline is
       :meth:`OpSpec.reference` on the same inputs.
    4. The roofline uses :meth:`OpSpec.flops` and :meth:`OpSpec.min_bytes`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from eggsearch.errors import UsageError

if TYPE_CHECKING:
    import torch

ELEM_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


@dataclass(frozen=True)
class Tolerance:
    """When an output counts as correct.

    Both must hold: ``allclose(out, truth, atol, rtol)`` elementwise, and the normwise relative
    error ``||out - truth|| / ||truth||`` at most ``max_rel_err`` (which an all-zeros answer fails
    even where values are tiny). ``truth`` is the op computed in float64 on the same inputs.
    """

    atol: float
    rtol: float
    max_rel_err: float


# Output rounding dominates: fp16 has a 2^-11 unit roundoff, bf16 2^-8. fp32 follows the
# KernelBench contract (atol = rtol = 1e-4); TF32 (10-bit mantissa) needs 1e-3-class bounds.
DEFAULT_TOLERANCES = {
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, max_rel_err=2e-3),
    "bf16": Tolerance(atol=5e-2, rtol=2e-2, max_rel_err=1.5e-2),
    "fp32": Tolerance(atol=1e-4, rtol=1e-4, max_rel_err=1e-5),
}
TF32_TOLERANCE = Tolerance(atol=1e-2, rtol=1e-2, max_rel_err=2e-3)


OptionValue = bool | int | float | str


@dataclass(frozen=True)
class Problem:
    """One thing to tune: an op at a shape and dtype, under a precision contract.

    ``options`` are the op's named variants beyond the shape (attention's ``causal``, say), as
    sorted ``(name, value)`` pairs; every option of the op is present.
    """

    op: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    allow_tf32: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()

    def option(self, name: str) -> OptionValue:
        return dict(self.options)[name]

    @property
    def sizes(self) -> dict[str, int]:
        return dict(zip(self.dims, self.shape))

    @property
    def shape_key(self) -> str:
        return "x".join(str(s) for s in self.shape)

    @property
    def elem_bytes(self) -> int:
        return ELEM_BYTES[self.dtype]

    @property
    def key(self) -> str:
        """Stable name of the problem: op, shape, dtype, precision contract and options."""
        tf32 = "-tf32" if self.allow_tf32 else ""
        opts = "".join(f"-{k}={_option_text(v)}" for k, v in self.options)
        return f"{self.op}-{self.shape_key}-{self.dtype}{tf32}{opts}"


def _option_text(value: OptionValue) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value).replace(",", "+")


Launcher = Callable[..., None]


class OpSpec(ABC):
    """An operator: reference, inputs, cost formulas, tolerances and structures.

    Subclasses set the class attributes and implement the abstract methods. ``structures`` maps a
    structure name (the key in ``search_spaces/<op>.yaml``) to its host launcher, a plain function
    ``launcher(*inputs, out, **config)`` that writes the whole result into ``out`` and returns
    nothing. ``config`` holds the structure's declared tunables (``tl.constexpr`` values and
    ``num_warps``/``num_stages``); anything else the launcher derives from the inputs.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    dims: ClassVar[tuple[str, ...]]
    dtypes: ClassVar[tuple[str, ...]] = ("fp16", "bf16", "fp32")
    default_shape: ClassVar[tuple[int, ...]]
    interpreter_shape: ClassVar[tuple[int, ...]]
    #: Shapes that ``--shape`` also takes by name (e.g. a model's projections).
    named_shapes: ClassVar[dict[str, tuple[int, ...]]] = {}
    structures: ClassVar[dict[str, Launcher]]
    # Whether the op's arithmetic is matrix products on the tensor cores (roofline rate).
    tensor_cores: ClassVar[bool] = False
    # Whether --allow-tf32 means anything for this op (it only changes fp32 matrix products).
    uses_tf32: ClassVar[bool] = False
    #: Named variants beyond the shape, with their defaults (the default's type is the option's
    #: type). Set on the command line as ``--option name=value``.
    options: ClassVar[dict[str, OptionValue]] = {}

    # ---- inputs and outputs -------------------------------------------------------------
    @abstractmethod
    def make_inputs(self, problem: Problem, seed: int, device: str) -> tuple[torch.Tensor, ...]:
        """Fresh random inputs for ``seed`` (never zeros), on ``device``."""

    @abstractmethod
    def output_shape(self, problem: Problem) -> tuple[int, ...]:
        """Shape of the output tensor (for ops with one output, in the inputs' dtype)."""

    def outputs(self, problem: Problem) -> list[tuple[tuple[int, ...], str]]:
        """(shape, dtype) of each output. Override for several outputs or another dtype; the
        launcher then gets ``out`` as a tuple, and ``reference``/``truth`` return tuples."""
        return [(tuple(self.output_shape(problem)), problem.dtype)]

    @abstractmethod
    def reference(self, *inputs: torch.Tensor) -> torch.Tensor:
        """PyTorch eager: the baseline that is timed, and (in float64) the truth."""

    def truth(self, *inputs: torch.Tensor):
        """The exact answer to compare against: the reference computed in float64."""
        return self.reference(*(t.double() if t.is_floating_point() else t for t in inputs))

    def empty_output(self, problem: Problem, device: str):
        """A fresh output tensor, or a tuple of them for an op with several outputs."""
        import torch

        outs = tuple(torch.empty(shape, dtype=torch_dtype(dtype), device=device)
                     for shape, dtype in self.outputs(problem))
        return outs[0] if len(outs) == 1 else outs

    # ---- cost model ---------------------------------------------------------------------
    @abstractmethod
    def flops(self, problem: Problem) -> float:
        """Floating-point operations the op must do."""

    @abstractmethod
    def min_bytes(self, problem: Problem) -> float:
        """Fewest bytes it must move: each input read once, the output written once."""

    def tolerance(self, problem: Problem) -> Tolerance:
        if problem.dtype == "fp32" and problem.allow_tf32:
            return TF32_TOLERANCE
        return DEFAULT_TOLERANCES[problem.dtype]

    # ---- problems -----------------------------------------------------------------------
    def problem(self, shape: str | tuple[int, ...] | None, dtype: str, allow_tf32: bool = False,
                interpreter: bool = False,
                options: dict[str, OptionValue | str] | None = None) -> Problem:
        """Build a checked :class:`Problem`; raises :class:`UsageError` on bad input."""
        if dtype not in self.dtypes:
            raise UsageError(f"dtype '{dtype}' is not supported by {self.name}; "
                             f"choose one of {', '.join(self.dtypes)}")
        if allow_tf32 and dtype != "fp32":
            raise UsageError("--allow-tf32 only applies to --dtype fp32")
        if shape is None:
            dims = self.interpreter_shape if interpreter else self.default_shape
        elif isinstance(shape, str) and shape in self.named_shapes:
            dims = self.named_shapes[shape]
        elif isinstance(shape, str):
            dims = parse_shape(shape, self.dims, self.name, tuple(self.named_shapes))
        else:
            dims = tuple(int(s) for s in shape)
        if len(dims) != len(self.dims) or any(d <= 0 for d in dims):
            raise UsageError(f"shape {dims} for {self.name} must be {'x'.join(self.dims)} "
                             "with positive integers")
        return Problem(self.name, self.dims, dims, dtype, allow_tf32 and self.uses_tf32,
                       self._parse_options(options or {}))

    def _parse_options(self, given: dict[str, OptionValue | str]) -> tuple:
        unknown = set(given) - set(self.options)
        if unknown:
            known = ", ".join(self.options) or "none"
            raise UsageError(f"unknown option(s) {', '.join(sorted(unknown))} for {self.name}; "
                             f"its options: {known}")
        values = dict(self.options)
        for name, raw in given.items():
            values[name] = _coerce_option(name, raw, self.options[name])
        self.check_options(values)
        return tuple(sorted(values.items()))

    def check_options(self, values: dict[str, OptionValue]) -> None:  # noqa: B027
        """Raise :class:`UsageError` for option values the op cannot take (default: any)."""

    def variables(self, problem: Problem) -> dict[str, int | float | str | bool]:
        """Names a constraint or selection rule may use about the problem."""
        return {**problem.sizes, "elem_bytes": problem.elem_bytes, "dtype": problem.dtype,
                "allow_tf32": problem.allow_tf32, **dict(problem.options)}


class RowNormOp(OpSpec):
    """Norms over the last dimension of [M, N] activations (layernorm, rmsnorm, add_rmsnorm):
    their shapes and inputs. ``make_inputs`` returns ``activations`` randn tensors [M, N], then
    the per-column ``parameters``: ``"weight"`` near 1 (1 + 0.5 randn), ``"bias"`` 0.5 randn."""

    dims = ("M", "N")
    default_shape = (8192, 8192)
    named_shapes = {"llama7b": (4096, 4096), "llama70b": (4096, 8192)}  # tokens x hidden
    activations: ClassVar[int] = 1
    parameters: ClassVar[tuple[str, ...]] = ("weight",)

    def make_inputs(self, problem: Problem, seed: int, device: str):
        import torch

        M, N = problem.shape
        g = torch.Generator(device=device).manual_seed(seed)
        dt = torch_dtype(problem.dtype)
        tensors = [torch.randn(M, N, generator=g, device=device).to(dt)
                   for _ in range(self.activations)]
        for name in self.parameters:
            values = 0.5 * torch.randn(N, generator=g, device=device)
            tensors.append((1.0 + values if name == "weight" else values).to(dt))
        return tuple(tensors)

    def output_shape(self, problem: Problem):
        return problem.shape


def _coerce_option(name: str, raw: OptionValue | str, default: OptionValue) -> OptionValue:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise UsageError(f"option {name}={raw!r}: expected {type(default).__name__}") from None
    return raw


def parse_shape(text: str, dims: tuple[str, ...], op: str,
                names: tuple[str, ...] = ()) -> tuple[int, ...]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != len(dims) or any(v <= 0 for v in values):
        named = f", or a named shape ({', '.join(names)})" if names else ""
        raise UsageError(f"malformed shape '{text}' for {op}: expected {'x'.join(dims)} "
                         f"with positive integers, e.g. {'x'.join(['1024'] * len(dims))}"
                         f"{named}")
    return values


def next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))
