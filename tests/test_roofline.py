"""The roofline bound: which rate and bandwidth each op is held to."""

from __future__ import annotations

import pytest

from eggsearch.hardware import load_hardware
from eggsearch.ops import get_op
from eggsearch.roofline import compute_rate, roofline

H200 = load_hardware()["H200"]


@pytest.mark.parametrize("op_name, dtype, options, rate", [
    ("matmul", "fp16", {}, 989e12),
    ("matmul", "fp32", {}, 494e12 / 3),         # exact fp32: tf32x3 beats plain FMA (67e12)
    ("attention", "fp16", {}, 989e12),          # tensor cores, though never TF32
    ("matmul_epilogue", "bf16", {}, 989e12),
    ("swiglu", "fp16", {}, 989e12),
    ("softmax", "fp16", {}, 67e12),             # CUDA-core arithmetic
    ("cross_entropy", "fp32", {}, 67e12),
])
def test_rate_follows_the_unit_that_does_the_arithmetic(op_name, dtype, options, rate):
    op = get_op(op_name)
    problem = op.problem(None, dtype, options=options)
    assert compute_rate(op, problem, H200) == pytest.approx(rate)


def test_tf32_raises_the_fp32_matmul_rate():
    op = get_op("matmul")
    assert compute_rate(op, op.problem(None, "fp32", allow_tf32=True), H200) == 494e12


def test_bounds_at_default_shapes():
    # Causal fp16 attention, B8 H32 S4096 D128: 1.1e12 FLOP at 989 TFLOP/s = 1.11 ms. (An
    # earlier version held it to the fp32 CUDA-core rate, a 16.4 ms bound that flagged every
    # real kernel as faster than physics.)
    op = get_op("attention")
    roof = roofline(op, op.problem(None, "fp16"), H200)
    assert roof.limiter == "compute" and roof.bound_s == pytest.approx(1.1117e-3, rel=1e-3)
    op = get_op("softmax")  # 2 * 8192^2 * 2 bytes at 4.8 TB/s
    roof = roofline(op, op.problem(None, "fp16"), H200)
    assert roof.limiter == "memory" and roof.bound_s == pytest.approx(268435456 / 4.8e12)
    assert roof.below_bound(roof.bound_s * 0.99) and not roof.below_bound(roof.bound_s)


def test_no_roofline_without_rates():
    op = get_op("matmul")
    roof = roofline(op, op.problem(None, "fp16"), load_hardware()["interpreter"])
    assert roof.bound_s is None and roof.fraction(1.0) is None and not roof.below_bound(0.0)
