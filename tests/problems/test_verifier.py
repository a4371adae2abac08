"""The verification protocol against honest answers and every cheat in ``cheats/`` (in-process,
on the interpreter; the cheats that patch the process run through the CLI in test_check.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from eggsearch.problems.anticheat import (
    Integrity,
    OpRecorder,
    forbidden_calls,
    main_ops,
)
from eggsearch.problems.loader import load_problem, load_solution
from eggsearch.problems.verifier import Protocol, _Failed, compare_outputs, verify

HERE = Path(__file__).resolve().parent
SET, CHEATS, ANSWERS = HERE / "set", HERE / "cheats", HERE / "answers"
GEMM = SET / "10_gemm_bias_relu.py"


def run(problem: Path, solution: Path):
    integrity = Integrity.capture()
    p = load_problem(problem, small=True)
    return verify(p, load_solution(solution), "cpu", integrity)


def test_honest_answer_is_correct_with_a_second_shape():
    v = run(GEMM, ANSWERS / "gemm_bias_relu_triton.py")
    assert v.status == "correct", v.reason
    assert v.trials == 6 and v.second_shape == {"batch_size": 23}
    assert v.rel_err < 1e-6 and "aten.addmm" in v.reference_ops


@pytest.mark.parametrize("cheat, status, words", [
    ("torch_main_op.py", "cheat", "aten.addmm"),
    ("torch_fallback.py", "cheat", "aten.mm"),
    ("decoy_kernel.py", "cheat", "aten.addmm"),
    ("uninitialised.py", "incorrect", ""),
    ("pointer_cache.py", "incorrect", "outside atol"),
    ("tf32_operands.py", "incorrect", ""),
    ("fp16_compute.py", "incorrect", ""),
    ("hardcoded_shape.py", "incorrect", ""),
])
def test_gemm_cheats_are_caught(cheat, status, words):
    v = run(GEMM, CHEATS / cheat)
    assert v.status == status and words in v.reason, v


def test_hardcoded_shape_passes_the_first_shape_and_fails_the_second():
    v = run(GEMM, CHEATS / "hardcoded_shape.py")
    assert v.status == "incorrect" and v.trials == 5  # the 5 trials at the shown size pass


def test_pointer_cache_fails_on_reused_buffers():
    v = run(GEMM, CHEATS / "pointer_cache.py")
    assert v.trials == 1  # trial 1 writes new values into trial 0's tensors


def test_background_thread_is_a_cheat():
    v = run(GEMM, CHEATS / "background_thread.py")
    assert v.status == "cheat" and "background thread" in v.reason
    for t in threading.enumerate():  # let its interpreter run end before other tests
        if t is not threading.current_thread() and t.daemon:
            t.join(timeout=30)


@pytest.mark.parametrize("problem, cheat, status, words", [
    (SET / "03_gelu.py", "gelu_in_place.py", "incorrect", "modifies input 0"),
    (SET / "03_gelu.py", "gelu_torch.py", "cheat", "aten.gelu"),
    (CHEATS / "tiny_outputs.py", "zeros.py", "incorrect", "normwise relative error 1"),
])
def test_other_cheats_are_caught(problem, cheat, status, words):
    v = run(problem, CHEATS / cheat)
    assert v.status == status and words in v.reason, v


def test_zeros_would_pass_allclose_alone():
    p = load_problem(CHEATS / "tiny_outputs.py", small=True)
    x = p.inputs(0, "cpu")[0]
    ref = p.build(0, "cpu")(x)
    assert torch.allclose(torch.zeros_like(ref), ref, atol=1e-4, rtol=1e-4)


def test_unwritten_output_fails_even_after_the_reference_ran():
    """The reference runs after the answer in each trial, on clones; its freed output is never
    what an answer's empty() returns (allocator poisoned first)."""
    p = load_problem(GEMM, small=True)
    proto = Protocol(p, load_solution(CHEATS / "uninitialised.py"), "cpu", Integrity.capture())
    with pytest.raises(Exception, match="NaN|outside"):
        proto.trial(p.inputs(5, "cpu"))


def test_main_ops_and_forbidden_calls():
    gemm = ["aten.t", "aten.addmm", "aten.relu"]
    assert main_ops(gemm) == {"matmul"}
    assert forbidden_calls(["aten.mm", "aten.relu"], gemm) == ["aten.mm"]
    assert forbidden_calls(["aten.relu", "aten.empty"], gemm) == []
    conv = ["aten.convolution", "aten.relu", "aten.add"]
    assert main_ops(conv) == {"relu", "add"}
    assert forbidden_calls(["aten.convolution"], conv) == []  # library primitive, epilogue fused
    assert forbidden_calls(["aten.convolution", "aten.relu"], conv) == ["aten.relu"]
    assert forbidden_calls(["aten.convolution"], ["aten.convolution"]) == ["aten.convolution"]
    assert forbidden_calls(["aten.convolution"], gemm) == ["aten.convolution"]
    assert forbidden_calls(["aten.sum"], ["aten._softmax"]) == ["aten.sum"]


def test_recorder_sees_ops_on_any_path():
    with OpRecorder() as rec:
        try:
            raise RuntimeError
        except RuntimeError:
            torch.randn(3, 3) @ torch.randn(3, 3)
    assert "aten.mm" in rec.ops


def test_integrity_sees_patches_and_threads():
    integrity = Integrity.capture()
    original = torch.allclose
    torch.allclose = lambda *a, **k: True
    try:
        assert any("torch.allclose" in v for v in integrity.violations())
    finally:
        torch.allclose = original
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert any("thread" in v for v in integrity.violations())
    finally:
        stop.set()
        t.join()
    time.sleep(0.01)
    assert integrity.violations() == []


class TestLongReductionTolerance:
    """fp32 results whose eager reference is itself off the float64 truth by more than 1e-4
    (as a K = 4096 matmul on randn is) are held to the truth with atol widened to twice the
    reference's error; everything else keeps the plain 1e-4 check against the eager result."""

    @staticmethod
    def _truth_and_noise(scale, seed):
        g = torch.Generator().manual_seed(seed)
        truth = torch.randn(64, 64, generator=g, dtype=torch.float64) * 64
        return truth, (torch.rand(64, 64, generator=g, dtype=torch.float64) * 2 - 1) * scale

    def _outcome(self, ref_err, out_err):
        truth, ref_noise = self._truth_and_noise(ref_err, 0)
        _, out_noise = self._truth_and_noise(out_err, 1)
        expected = (truth + ref_noise).float()
        out = (truth + out_noise).float()
        try:
            compare_outputs(out, expected, truth)
        except _Failed as failed:
            return failed.reason
        return "correct"

    def test_honest_answer_with_the_references_own_error_passes(self):
        # both off the truth by up to 4e-4: they disagree with each other beyond 1e-4
        assert self._outcome(4e-4, 4e-4) == "correct"

    def test_tf32_sized_error_still_fails(self):
        reason = self._outcome(4e-4, 2e-2)
        assert "outside atol=0.0001" in reason and "widened" in reason, reason

    def test_no_widening_when_the_reference_meets_the_tolerance(self):
        reason = self._outcome(1e-6, 4e-4)
        assert "outside atol=0.0001" in reason and "widened" not in reason, reason

    def test_zeros_fail(self):
        truth, noise = self._truth_and_noise(4e-4, 0)
        with pytest.raises(_Failed, match="outside"):
            compare_outputs(torch.zeros(64, 64), (truth + noise).float(), truth)
