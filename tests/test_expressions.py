from __future__ import annotations

import pytest

from eggsearch.errors import ExpressionError
from eggsearch.expressions import parse

ENV = {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "num_stages": 3, "elem_bytes": 2,
       "smem_per_block": 232448, "dtype": "fp16", "N": 1000}


@pytest.mark.parametrize("expr, expected", [
    ("num_stages * (BLOCK_M + BLOCK_N) * BLOCK_K * elem_bytes <= smem_per_block", True),
    ("num_stages * (BLOCK_M + BLOCK_N) * BLOCK_K * elem_bytes <= 1000", False),
    ("min(BLOCK_M, BLOCK_N, BLOCK_K) >= 16", True),
    ("next_pow2(N) == 1024 and cdiv(N, BLOCK_M) == 8", True),
    ("dtype == 'fp32' or BLOCK_M == 128", True),
    ("dtype in ['fp32', 'bf16']", False),
    ("dtype not in ('fp32', 'bf16')", True),
    ("BLOCK_M // BLOCK_N == 2 and BLOCK_M % 3 == 2 and 2 ** 3 == 8", True),
    ("16 <= BLOCK_K < 64", True),
    ("(BLOCK_M if dtype == 'fp16' else 0) == 128", True),
    ("not (BLOCK_M > 64)", False),
    ("log2(BLOCK_M) == 7 and abs(-3) == 3 and max(1, 2) == 2", True),
])
def test_accepts_and_evaluates(expr, expected):
    assert parse(expr).evaluate(ENV) is expected


def test_reports_names():
    assert parse("BLOCK_M * num_warps <= max(N, 4)").names == {"BLOCK_M", "num_warps", "N"}


@pytest.mark.parametrize("expr", [
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "BLOCK_M.__class__",
    "(lambda: 1)()",
    "[x for x in (1, 2)]",
    "ENV['a']",
    "eval('1')",
    "getattr(BLOCK_M, 'real')",
    "_secret + 1",
    "min(1, key=abs)",
    "{1: 2}",
    "x := 3",
    "None == None",
    "",
    "1 +",
])
def test_refuses_unsafe_or_malformed(expr):
    with pytest.raises(ExpressionError):
        parse(expr)


@pytest.mark.parametrize("expr", ["2 ** 100000 > 1", "'a' * 1000000000 == 'b'",
                                  "BLOCK_M / 0 > 1", "unknown_name > 1"])
def test_refuses_at_evaluation(expr):
    with pytest.raises(ExpressionError):
        parse(expr).evaluate(ENV)
