"""``check`` end to end (worker processes, interpreter): verdicts, exit codes, and the cheats
that tamper with the process (timers, synchronization, precision switches)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eggsearch.problems.anticheat import Integrity
from eggsearch.problems.check import CheckSettings, _parent_clock_flag
from eggsearch.problems.loader import load_problem, load_solution
from eggsearch.problems.verifier import verify

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GEMM = HERE / "set" / "10_gemm_bias_relu.py"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "eggsearch", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)


def test_check_honest_answer_exit_0_and_json():
    r = cli("check", "--problem", str(GEMM), "--solution",
            str(HERE / "answers" / "gemm_bias_relu_triton.py"), "--no-compile", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["status"] == "correct" and result["interpreter"]
    assert result["answer_ms"] > 0 and result["eager_ms"] > 0
    assert result["verdict"]["second_shape"] == {"batch_size": 23}
    assert result["timing"]["timer"] == "interpreter-wallclock"


def test_patched_timer_is_rejected_in_the_worker():
    r = cli("check", "--problem", str(GEMM), "--solution",
            str(HERE / "cheats" / "patch_timer.py"), "--no-compile")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "rejected as a cheat" in r.stdout and "patches time.perf_counter" in r.stdout


@pytest.mark.parametrize("cheat, words", [
    ("patch_sync.py", "patches torch.cuda.synchronize"),
    ("tf32_switch.py", "allow_tf32 (False -> True)"),
])
def test_process_tampering_is_rejected(cheat, words):
    """In-process (cheaper than a worker); the finally block puts back what the cheat changes.

    Not pytest's monkeypatch: torch serves ``allow_tf32`` through a module ``__getattr__``, which
    pytest >= 9.2 records as absent and then fails to delete at teardown.
    """
    import torch

    sync = torch.cuda.synchronize
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        integrity = Integrity.capture()
        problem = load_problem(GEMM, small=True)
        v = verify(problem, load_solution(HERE / "cheats" / cheat), "cpu", integrity)
    finally:
        torch.cuda.synchronize = sync
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    assert v.status == "cheat" and words in v.reason, v


@pytest.mark.parametrize("args, message", [
    (["--problem", str(HERE / "malformed" / "missing_get_inputs.py")],
     "does not define get_inputs"),
    (["--problem", str(HERE / "malformed" / "forward_fails.py")], "Model.forward raised"),
    (["--problem", str(GEMM), "--trials", "2"], "--trials must be at least 5"),
])
def test_bad_input_exit_2_one_line(args, message):
    solution = str(HERE / "answers" / "gemm_bias_relu_triton.py")
    r = cli("check", "--solution", solution, *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


class _FakeWorker:
    """Answers batch requests after sleeping ``per_call`` seconds per call."""

    def __init__(self, per_call: float):
        self.per_call = per_call

    def request(self, message, timeout):
        import time

        time.sleep(0 if message["noop"] else self.per_call * message["n"])
        return {"done": message["n"]}


def test_parent_clock_rejects_a_reported_time_it_did_not_see():
    settings = CheckSettings()
    assert _parent_clock_flag(_FakeWorker(0.002), 2.0, settings, batch_ms=40) == ""
    flag = _parent_clock_flag(_FakeWorker(0.002), 0.2, settings, batch_ms=40)
    assert "parent's clock saw" in flag


def test_a_time_below_the_roofline_is_suspicious():
    from eggsearch.problems.check import _roofline_flag
    from eggsearch.problems.cost import roofline_bound_ms

    settings = CheckSettings(device="cuda", small=False)
    bound = roofline_bound_ms(GEMM, False, "NVIDIA H100 80GB HBM3")
    # 2 * 2048 * 4096 * 4096 FLOPs at the H100's exact-fp32 rate (a third of TF32's peak)
    assert bound == pytest.approx(2 * 2048 * 4096 * 4096 / (494e12 / 3) * 1e3, rel=0.01)
    status, reason = _roofline_flag(GEMM, settings, bound / 2, "NVIDIA H100 80GB HBM3")
    assert status == "suspicious" and "below the roofline bound" in reason
    assert _roofline_flag(GEMM, settings, bound * 2, "NVIDIA H100 80GB HBM3")[0] == "correct"
