"""The cheats only a GPU exposes: side streams, and the caching allocator's freed memory."""

from __future__ import annotations

import pytest

from eggsearch.problems.anticheat import Integrity
from eggsearch.problems.check import CheckSettings, check
from eggsearch.problems.loader import load_problem, load_solution
from eggsearch.problems.verifier import Protocol, _Failed, verify
from tests.problems.test_check import GEMM, HERE

pytestmark = pytest.mark.gpu


def test_side_stream_work_is_counted_and_flagged():
    result = check(GEMM, HERE / "cheats" / "side_stream.py",
                   CheckSettings(device="cuda", small=False, compile=False))
    assert result.status == "cheat" and "outside the timed stream" in result.reason, result


def test_unwritten_output_would_fool_a_reference_first_order():
    import torch

    problem = load_problem(GEMM, small=True)
    cheat = load_solution(HERE / "cheats" / "uninitialised.py")
    x = problem.inputs(3, "cuda")
    reference, answer = problem.build(42, "cuda"), problem.build(42, "cuda", cheat)
    with torch.no_grad():
        expected = reference(*x)
        value = expected.clone()
        del expected  # a naive protocol: the reference first, its output freed
        fooled = answer(*x)
    assert torch.equal(fooled, value)  # the allocator handed the freed result back
    proto = Protocol(problem, cheat, "cuda", Integrity.capture())
    with pytest.raises(_Failed):
        proto.trial(problem.inputs(4, "cuda"))
    assert verify(problem, cheat, "cuda", Integrity.capture()).status == "incorrect"


def test_poisoned_caching_allocator_hands_out_nan():
    import torch

    from eggsearch.problems.anticheat import poison_allocator

    poison_allocator([1000 * 1000 * 4], "cuda")
    assert bool(torch.empty(1000, 1000, device="cuda").isnan().all())


def test_honest_answer_on_gpu_with_compile():
    result = check(GEMM, HERE / "answers" / "gemm_bias_relu_triton.py",
                   CheckSettings(device="cuda", small=True, compile=True))
    assert result.correct and result.timing["timer"] == "cuda-events+device-sync"
    assert result.speedup is not None and result.eager_ms > 0
    assert result.compile_ms is not None or result.compile_error


def test_generated_answer_relaunches_only_under_the_same_alignment(tmp_path):
    """The answer's direct launch path keys compiled kernels on pointer alignment: a misaligned
    view after an aligned call must not reuse the aligned kernel."""
    import torch

    from eggsearch.problems.generate import generate_answer
    from tests.problems.test_bench import SET

    settings = CheckSettings(device="cuda", small=True, compile=False)
    answer = load_solution(generate_answer(SET / "03_gelu.py", tmp_path, settings))()
    base = torch.randn(9 * 301 + 1, device="cuda")
    for x in (base[:-1].view(9, 301), base[1:].view(9, 301), base[:-1].view(9, 301)):
        torch.testing.assert_close(answer(x), torch.nn.functional.gelu(x), atol=1e-5, rtol=1e-5)
