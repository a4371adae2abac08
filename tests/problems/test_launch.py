"""The answers' launch helper: compiled kernels are reused only under the same specialization."""

from __future__ import annotations

import types

import pytest

from eggsearch.problems.launch import LAUNCH_SOURCE, run_call


class FakeLauncher:
    """Stands in for Triton 3.6's CudaLauncher: ``launch`` is the C function it wraps."""

    def __init__(self, log, scratch):
        self.log = log
        self.global_scratch_size = scratch
        self.profile_scratch_size = 0
        self.launch_cooperative_grid = "coop"
        self.launch_pdl = "pdl"

    def __call__(self, *args):
        self.log.append(("run", args))

    def launch(self, *args):
        self.log.append(("launch", args))


class FakeCompiled:
    def __init__(self, log, scratch):
        self.function = "fn"
        self.packed_metadata = "meta"
        self.run = FakeLauncher(log, scratch)


class FakeKernel:
    """Stands in for a JITFunction: ``kernel[grid](...)`` logs and returns a compiled kernel."""

    def __init__(self, scratch=0):
        self.log = []
        self.scratch = scratch

    def __getitem__(self, grid):
        def call(*args, **kwargs):
            self.log.append(("jit", grid, args, kwargs))
            return FakeCompiled(self.log, self.scratch)
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


def test_second_call_with_the_same_key_runs_the_c_launch_function_directly():
    ns, kernel = namespace(), FakeKernel()
    launch(ns, kernel)
    launch(ns, kernel)
    assert [e[0] for e in kernel.log] == ["jit", "launch"]
    assert kernel.log[0][1:] == ((8,), ("x", "y", 4096), {"BLOCK": 512, "num_warps": 4})
    # grid padded to 3-D, the current stream, the function, the launch flags, no scratch, the
    # metadata, no hooks, then every argument in signature order (the constexprs last): what
    # CudaLauncher.__call__ passes to it
    assert kernel.log[1][1] == (8, 1, 1, 1234, "fn", "coop", "pdl", None, None, "meta", None,
                                None, None, "x", "y", 4096, 512)


def test_a_kernel_that_needs_scratch_memory_goes_through_its_launcher_object():
    ns, kernel = namespace(), FakeKernel(scratch=128)
    launch(ns, kernel)
    launch(ns, kernel)
    assert [e[0] for e in kernel.log] == ["jit", "run"]
    assert kernel.log[1][1] == (8, 1, 1, 1234, "fn", "meta", None, None, None,
                                "x", "y", 4096, 512)


def test_the_cache_is_per_kernel():
    ns, a, b = namespace(), FakeKernel(), FakeKernel()
    for k in (a, b, a, b):
        launch(ns, k)
    for k in (a, b):
        assert [e[0] for e in k.log] == ["jit", "launch"]


@pytest.mark.parametrize("change", [{"ptr_low_bits": 8}, {"numel": 4097}])
def test_a_different_specialization_goes_through_triton_again(change):
    ns, kernel = namespace(), FakeKernel()
    launch(ns, kernel)
    launch(ns, kernel, **change)
    launch(ns, kernel, **change)
    assert [e[0] for e in kernel.log] == ["jit", "jit", "launch"]


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
