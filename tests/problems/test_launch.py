"""The answers' launch helper: compiled kernels are reused only under the same specialization."""

from __future__ import annotations

import types

import pytest

from eggsearch.problems.launch import LAUNCH_SOURCE, run_call


class FakeCompiled:
    def __init__(self, log):
        self.log = log
        self.function = "fn"
        self.packed_metadata = "meta"

    def run(self, *args):
        self.log.append(("direct", args))


class FakeKernel:
    """Stands in for a JITFunction: ``kernel[grid](...)`` logs and returns a compiled kernel."""

    def __init__(self):
        self.log = []

    def __getitem__(self, grid):
        def call(*args, **kwargs):
            self.log.append(("jit", grid, args, kwargs))
            return FakeCompiled(self.log)
        return call


def namespace(version="3.6.0", interpret=False, hooks=()):
    runtime = types.SimpleNamespace(interpret=interpret,
                                    launch_enter_hook=types.SimpleNamespace(calls=list(hooks)),
                                    launch_exit_hook=types.SimpleNamespace(calls=[]))
    driver = types.SimpleNamespace(get_current_device=lambda: 0,
                                   get_current_stream=lambda dev: 1234)
    triton = types.SimpleNamespace(__version__=version, knobs=types.SimpleNamespace(
        runtime=runtime), runtime=types.SimpleNamespace(driver=types.SimpleNamespace(
            active=driver)))
    ns = {"triton": triton}
    exec(LAUNCH_SOURCE, ns)
    return ns


def launch(ns, kernel, ptr_low_bits=0, numel=4096):
    ns["_run"](kernel, (8,), ("x", "y", numel), {"BLOCK": 512}, {"num_warps": 4},
               ("dtype", ptr_low_bits, numel, 512, 4))


def test_second_call_with_the_same_key_runs_the_launcher_directly():
    ns, kernel = namespace(), FakeKernel()
    launch(ns, kernel)
    launch(ns, kernel)
    assert [e[0] for e in kernel.log] == ["jit", "direct"]
    assert kernel.log[0][1:] == ((8,), ("x", "y", 4096), {"BLOCK": 512, "num_warps": 4})
    # grid padded to 3-D, the current stream, the compiled kernel's handles, no hooks, then
    # every argument in signature order (the constexprs last), as Triton's own launch passes
    assert kernel.log[1][1] == (8, 1, 1, 1234, "fn", "meta", None, None, None,
                                "x", "y", 4096, 512)


@pytest.mark.parametrize("change", [{"ptr_low_bits": 8}, {"numel": 4097}])
def test_a_different_specialization_goes_through_triton_again(change):
    ns, kernel = namespace(), FakeKernel()
    launch(ns, kernel)
    launch(ns, kernel, **change)
    launch(ns, kernel, **change)
    assert [e[0] for e in kernel.log] == ["jit", "jit", "direct"]


@pytest.mark.parametrize("kw", [{"version": "3.5.1"}, {"interpret": True},
                                {"hooks": [print]}])
def test_plain_triton_launch_on_other_versions_the_interpreter_or_with_hooks(kw):
    ns, kernel = namespace(**kw), FakeKernel()
    for _ in range(3):
        launch(ns, kernel)
    assert [e[0] for e in kernel.log] == ["jit"] * 3


def test_call_site_key_covers_every_tensor_alignment_and_integer():
    line = run_call("k", "grid", ["t0", "o0", "part1", "R", "C"], [("BLOCK_R", "BR")],
                    [("num_warps", "4")])
    assert line == ("_run(k, grid, (t0, o0, part1, R, C,), {'BLOCK_R': BR}, {'num_warps': 4}, "
                    "(t0.dtype, t0.data_ptr() & 15, o0.dtype, o0.data_ptr() & 15, "
                    "part1.dtype, part1.data_ptr() & 15, R, C, BR, 4,))")
