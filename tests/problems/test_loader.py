"""Problem files: sizes, seeds, second shapes, and a one-line error for each malformed file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eggsearch.errors import UsageError
from eggsearch.problems.loader import load_problem, load_solution, validate_problem
from eggsearch.problems.shapes import second_shape_candidates

HERE = Path(__file__).resolve().parent
SET, MALFORMED = HERE / "set", HERE / "malformed"


@pytest.mark.parametrize("name, message", [
    ("missing_get_inputs.py", "does not define get_inputs"),
    ("inputs_not_a_list.py", "get_inputs() must return a list of tensors, got dict"),
    ("inputs_wrong_type.py", "must return tensors or numbers, got str"),
    ("init_inputs_not_a_list.py", "get_init_inputs() must return a list, got int"),
    ("import_error.py", "does not import: ModuleNotFoundError"),
    ("model_not_a_module.py", "Model must be a subclass of torch.nn.Module"),
    ("bad_small.py", "SMALL names 'm'"),
])
def test_malformed_problem_is_one_line_usage_error(name, message):
    with pytest.raises(UsageError) as info:
        validate_problem(MALFORMED / name, small=True)
    text = str(info.value)
    assert message in text and "\n" not in text and name in text


def test_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "syntax_error.py"  # written here: a committed file that does not parse
    bad.write_text("class Model(nn.Module:\n    pass\n")  # would fail the linter
    with pytest.raises(UsageError, match="does not import: SyntaxError"):
        validate_problem(bad)


def test_missing_file_and_bad_solution():
    with pytest.raises(UsageError, match="no such problem"):
        load_problem(HERE / "nope.py")
    with pytest.raises(UsageError, match="does not define class ModelNew"):
        load_solution(SET / "01_matmul.py")


def test_sizes_seeds_and_devices():
    p = load_problem(SET / "10_gemm_bias_relu.py", small=True)
    assert p.sizes == {"batch_size": 19, "in_features": 45, "out_features": 33}
    a, b = p.inputs(3, "cpu")[0], p.inputs(3, "cpu")[0]
    assert a.shape == (19, 45) and torch.equal(a, b)
    assert not torch.equal(a, p.inputs(4, "cpu")[0])
    m1, m2 = p.build(42, "cpu"), p.build(42, "cpu")
    assert torch.equal(m1.linear.weight, m2.linear.weight)
    assert load_problem(SET / "10_gemm_bias_relu.py").sizes["batch_size"] == 2048


def test_second_shape_only_varies_what_the_model_cannot_see():
    p = load_problem(SET / "10_gemm_bias_relu.py", small=True)
    # in/out_features reach Model through get_init_inputs: only the batch may change
    assert list(second_shape_candidates(p)) == [{"batch_size": 23}]
    mm = load_problem(SET / "01_matmul.py", small=True)
    assert [list(c) for c in second_shape_candidates(mm)] == [["M"], ["K"], ["N"]]
    with p.sizes_applied({"batch_size": 5}):
        assert p.inputs(0, "cpu")[0].shape[0] == 5
    assert p.sizes["batch_size"] == 19
