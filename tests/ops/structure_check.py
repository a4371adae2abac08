"""Shared helper for the per-op structure tests: run one structure on the interpreter, check it."""

from __future__ import annotations

from eggsearch.ops import get_op
from eggsearch.verify import run_and_check


def assert_structure_correct(op_name: str, structure: str, shape: tuple[int, ...], dtype: str,
                             config: dict, seeds=(0, 1), allow_tf32: bool = False) -> None:
    op = get_op(op_name)
    problem = op.problem(shape, dtype, allow_tf32=allow_tf32)
    launcher = op.structures[structure]
    for seed in seeds:
        check = run_and_check(op, problem, launcher, config, seed, "cpu")
        assert check.ok, (f"{op_name}.{structure} {shape} {dtype} {config} seed {seed}: "
                          f"{check.message}")
