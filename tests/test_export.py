"""Export: the module runs in a fresh interpreter without eggsearch, dispatches (exact, bucket,
autotune, fallback) and computes right; provenance is checked at import; re-export is atomic."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import triton

from eggsearch.cli import main
from eggsearch.export import export
from eggsearch.export.source import SourceError, structure_sha256
from tests.fixtures.recorded_runs import H100, INTERPRETER, make_run

ROOT = Path(__file__).resolve().parents[1]

# Run in a child: `python -I` (no PYTHONPATH, no cwd on sys.path) with every eggsearch import
# refused, so the exported module must stand alone.
CHILD_PRELUDE = textwrap.dedent("""
    import importlib.util, sys, warnings
    class NoEggsearch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "eggsearch":
                raise ImportError("an export imported eggsearch")
    sys.meta_path.insert(0, NoEggsearch())
    import torch

    def load(directory, op, alias):
        spec = importlib.util.spec_from_file_location(alias, f"{directory}/{op}_kernels.py")
        module = sys.modules[alias] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def close(got, want, atol, rtol):
        got, want = got.double(), want.double()
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, atol=atol, rtol=rtol), (got - want).abs().max()
""")


def run_child(tmp_path: Path, body: str, interpret: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TRITON_INTERPRET"] = "1" if interpret else "0"
    code = CHILD_PRELUDE + textwrap.dedent(body) + \
        "\nassert not any(m.split('.')[0] == 'eggsearch' for m in sys.modules)\nprint('OK')\n"
    return subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def cli(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture(scope="module")
def matmul_runs(tmp_path_factory) -> Path:
    """A real multi-shape run on the interpreter: two matmul shapes, two trials each."""
    tmp = tmp_path_factory.mktemp("multi")
    (tmp / "shapes.yaml").write_text(
        "shapes:\n  matmul:\n    - {name: odd, shape: 33x40x48}\n"
        "    - {name: exact_fp32, shape: 64x24x32, dtype: fp32}\n  softmax: [9x3000]\n")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "eggsearch", "run", "--op", "matmul", "--shapes",
                        str(tmp / "shapes.yaml"), "--trials", "2", "--backend", "interpreter",
                        "--out", str(tmp / "runs")], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "odd" in r.stdout and "exact_fp32" in r.stdout
    return tmp / "runs"


def test_multi_shape_run_exports_a_standalone_module(tmp_path, matmul_runs):
    index = json.loads((matmul_runs / "shapes.json").read_text())
    assert [s["name"] for s in index["shapes"]] == ["odd", "exact_fp32"]
    assert all((matmul_runs / s["run_dir"] / "summary.json").exists() for s in index["shapes"])
    out = tmp_path / "export"
    assert cli("export", "--op", "matmul", "--runs", str(matmul_runs), "--out", str(out)) == 0
    table = json.loads((out / "matmul_configs.json").read_text())
    assert sorted(e["shape_key"] for e in table["entries"]) == ["33x40x48", "64x24x32"]
    for e in table["entries"]:
        assert e["triton"] == triton.__version__ and e["gpu"] == "Triton CPU interpreter"
        assert e["kernel_sha256"] == table["kernels"][e["structure"]]["sha256"]
        assert e["trials"] == 2 and e["time_ms"] > 0 and e["study"] and e["date"]
    text = (out / "matmul_kernels.py").read_text()
    assert "OpSpec" not in text and not re.search(r"^\s*(import|from) eggsearch", text, re.M)
    r = run_child(tmp_path, f"""
        m = load({str(out)!r}, "matmul", "exported_matmul")
        cases = [((33, 40, 48), torch.float16, "exact"), ((64, 24, 32), torch.float32, "exact"),
                 ((41, 40, 37), torch.float16, "bucket"), ((101, 23, 61), torch.float16,
                 "autotune"), ((33, 40, 48), torch.bfloat16, "fallback")]
        for (M, N, K), dt, how in cases:
            a, b = torch.randn(M, K).to(dt), torch.randn(K, N).to(dt)
            c = m.matmul(a, b)
            assert m.choose(a, b).how == how, (M, N, K, dt, m.choose(a, b))
            assert c.shape == (M, N) and c.dtype == dt
            tol = 1e-4 if dt == torch.float32 else 3e-2
            close(c, a.double() @ b.double(), tol, tol)
            out = torch.empty(M, N, dtype=dt)
            assert m.matmul(a, b, out=out) is out
            close(out, c, 0, 0)
    """)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def recorded(tmp_path: Path, device=INTERPRETER,
             ops=("softmax", "layernorm", "rmsnorm")) -> dict[str, Path]:
    """Recorded runs of these ops (times and configs chosen here); rmsnorm's include a
    structure that an LLM wrote."""
    runs = tmp_path / "runs"
    specs = {
        "softmax": [("37x301", [("one_pass", {"num_warps": 4, "EVICT": ""}, 2.0),
                                ("online", {"BLOCK_N": 128, "num_warps": 2, "num_stages": 1},
                                 3.0), ("online", {"BLOCK_N": 64, "num_warps": 1,
                                                   "num_stages": 1}, "incorrect")]),
                    ("5x2000", [("online", {"BLOCK_N": 256, "num_warps": 4, "num_stages": 1},
                                 1.0)])],
        "layernorm": [("37x301", [("one_pass", {"num_warps": 4, "EVICT": "", "CTAS_PER_SM": 0,
                                                "num_stages": 1}, 1.5),
                                  ("looped", {"BLOCK_N": 128, "num_warps": 4,
                                              "num_stages": 1}, 2.5)])],
        "rmsnorm": [("37x300", [("looped", {"BLOCK_N": 128, "num_warps": 2}, 1.0),
                                ("one_pass", {"num_warps": 4, "EVICT": "evict_first"}, 4.0)])],
    }
    dirs = {}
    for op, shapes in specs.items():
        if op not in ops:
            continue
        for shape, trials in shapes:
            make_run(runs / op / shape, op, shape, "fp16", trials, device=device)
        dirs[op] = runs / op
    if "rmsnorm" in ops:
        llm_run = make_run(runs / "rmsnorm" / "20x1000", "rmsnorm", "20x1000", "fp16",
                           [("llm_rms", {"num_warps": 4}, 0.5)], device=device)
        save_structure(llm_run, "llm_rms", LLM_KERNEL)
    return dirs


# A structure as the LLM proposer saves it in a run directory (not in eggsearch/ops/).
LLM_KERNEL = textwrap.dedent("""
    import triton
    import triton.language as tl
    from eggsearch.ops.base import next_pow2


    @triton.jit
    def _llm_rms_kernel(x_ptr, w_ptr, y_ptr, N, eps, BLOCK_N: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + row * N + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


    def launch(x, w, *, out, num_warps):
        M, N = x.shape
        _llm_rms_kernel[(M,)](x, w, out, N, 1e-6, BLOCK_N=next_pow2(N), num_warps=num_warps)
""")


def save_structure(run_dir: Path, name: str, source: str) -> None:
    folder = run_dir / "structures" / name
    folder.mkdir(parents=True)
    (folder / "kernel.py").write_text(source)
    (folder / "structure.json").write_text(json.dumps({
        "op": "rmsnorm", "name": name, "launcher": "launch", "module": "kernel.py",
        "origin": "llm", "sha256": hashlib.sha256(source.encode()).hexdigest()}))


def test_several_ops_compute_right_in_a_fresh_interpreter(tmp_path):
    dirs = recorded(tmp_path)
    for op, runs in dirs.items():
        result = export(op, [runs], tmp_path / f"export-{op}", top_k=3)
        assert all(len(e["top"]) <= 3 for e in result.entries)
    r = run_child(tmp_path, f"""
        F = torch.nn.functional
        sm = load({str(tmp_path / "export-softmax")!r}, "softmax", "e_softmax")
        ln = load({str(tmp_path / "export-layernorm")!r}, "layernorm", "e_layernorm")
        rn = load({str(tmp_path / "export-rmsnorm")!r}, "rmsnorm", "e_rmsnorm")
        for (M, N), how in [((37, 301), "exact"), ((5, 2000), "exact"), ((53, 300), "bucket"),
                            ((7, 5003), "autotune")]:
            x = torch.randn(M, N).half()
            assert sm.choose(x).how == how, (M, N, sm.choose(x))
            close(sm.softmax(x), torch.softmax(x.double(), -1), 1e-2, 1e-2)
        assert sm.choose(torch.randn(37, 301).half()).structure == "one_pass"
        assert sm.choose(torch.randn(5, 2000).half()).structure == "online"
        for M, N in [(37, 301), (61, 257), (3, 1031)]:
            x, w, b = torch.randn(M, N).half(), torch.randn(N).half(), torch.randn(N).half()
            close(ln.layernorm(x, w, b), F.layer_norm(x.double(), (N,), w.double(), b.double(),
                                                      eps=1e-5), 3e-2, 1e-2)
            close(rn.rmsnorm(x, w), F.rms_norm(x.double(), (N,), w.double(), eps=1e-6),
                  3e-2, 1e-2)
        assert rn.choose(x, w).how == "autotune"
        x = torch.randn(37, 300).half()
        assert rn.choose(x, x[0]).structure == "looped"  # the faster recorded config
        x, w = torch.randn(20, 1000).half(), torch.randn(1000).half()  # an LLM's structure
        assert rn.choose(x, w).structure == "llm_rms" and rn.choose(x, w).how == "exact"
        close(rn.rmsnorm(x, w), F.rms_norm(x.double(), (1000,), w.double(), eps=1e-6),
              3e-2, 1e-2)
        xt = torch.randn(301, 37).half().t()  # not contiguous: copied first
        close(sm.softmax(xt), torch.softmax(xt.double(), -1), 1e-2, 1e-2)
    """)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_head_to_head_rounds_rank_the_configs_they_timed(tmp_path):
    """A GPU run whose head-to-head rounds found its second trial faster than its first (one
    lucky measurement): the export's best is the second, with the rounds' speedup."""
    looped, one_pass = ({"BLOCK_N": 128, "num_warps": 2},
                        {"num_warps": 4, "EVICT": "evict_first"})
    run = make_run(tmp_path / "runs" / "rmsnorm" / "37x300", "rmsnorm", "37x300", "fp16",
                   [("looped", looped, 1.0), ("one_pass", one_pass, 1.1),
                    ("looped", {"BLOCK_N": 64, "num_warps": 2}, 1.2)], device=H100,
                   pytorch_ms=1.5)
    summary = json.loads((run / "summary.json").read_text())
    summary["head_to_head"] = {
        "trial": 1, "study_best_trial": 0, "speedup": 1.6 / 1.05, "best_ms": 1.05,
        "pytorch_ms": 1.6, "rounds": 6, "candidates": [
            {"trial": 0, "structure": "looped", "config": looped, "median_ms": 1.3},
            {"trial": 1, "structure": "one_pass", "config": one_pass, "median_ms": 1.05}]}
    (run / "summary.json").write_text(json.dumps(summary))
    export("rmsnorm", [tmp_path / "runs"], tmp_path / "out", top_k=3)
    entry = json.loads((tmp_path / "out" / "rmsnorm_configs.json").read_text())["entries"][0]
    assert entry["structure"] == "one_pass" and entry["config"] == one_pass
    assert [c["trial"] for c in entry["top"]] == [1, 0, 2]
    assert entry["speedup"] == pytest.approx(1.6 / 1.05)
    assert entry["head_to_head"]["rounds"] == 6


def test_provenance_mismatch_warns_and_falls_back_or_refuses(tmp_path):
    only = ("rmsnorm",)
    h100 = recorded(tmp_path / "h100", H100, only)["rmsnorm"]
    old_triton = recorded(tmp_path / "old", {**INTERPRETER, "triton": "2.0.0"}, only)["rmsnorm"]
    ours = recorded(tmp_path / "ours", ops=only)["rmsnorm"]
    export("rmsnorm", [h100], tmp_path / "h100-export")
    export("rmsnorm", [h100], tmp_path / "h100-strict", strict=True)
    export("rmsnorm", [old_triton], tmp_path / "old-export")
    export("rmsnorm", [ours], tmp_path / "tampered")
    configs = tmp_path / "tampered" / "rmsnorm_configs.json"
    table = json.loads(configs.read_text())
    entry = next(e for e in table["entries"] if e["shape_key"] == "37x300")
    entry["top"][0]["kernel_sha256"] = "0" * 64
    configs.write_text(json.dumps(table))
    r = run_child(tmp_path, f"""
        F = torch.nn.functional
        x, w = torch.randn(37, 300).half(), torch.randn(300).half()
        want = F.rms_norm(x.double(), (300,), w.double(), eps=1e-6)
        for name, expect in [("h100-export", "NVIDIA H100"), ("old-export", "Triton 2.0.0"),
                             ("tampered", "kernel source of looped differs")]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                m = load(f"{str(tmp_path)}/{{name}}", "rmsnorm", name.replace("-", "_"))
            assert any(expect in str(c.message) for c in caught), [str(c.message) for c in caught]
            choice = m.choose(x, w)
            if name == "tampered":  # the other entry (20x1000) is still good
                assert choice.tuned_shape != (37, 300), choice
            else:
                assert choice.how == "fallback" and choice.structure is None, choice
            close(m.rmsnorm(x, w), want, 3e-2, 1e-2)
        try:
            load(f"{str(tmp_path)}/h100-strict", "rmsnorm", "strict")
        except Exception as exc:
            assert type(exc).__name__ == "ProvenanceError" and "strict" in str(exc), exc
        else:
            raise AssertionError("a strict export loaded on a foreign GPU")
    """)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_failed_or_killed_export_leaves_the_previous_one(tmp_path, monkeypatch):
    runs = recorded(tmp_path, ops=("softmax",))
    out = tmp_path / "export"
    export("softmax", [runs["softmax"]], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from eggsearch.export import writer

    calls = []

    def failing_write(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        path.write_text(text)

    monkeypatch.setattr(writer, "write_file", failing_write)
    with pytest.raises(OSError, match="disk full"):
        export("softmax", [runs["softmax"] / "37x301"], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.")]
    # Killed outright (no clean-up at all) after writing the first file.
    code = textwrap.dedent(f"""
        import os
        from eggsearch.export import export, writer
        writer.write_file = lambda path, text: (path.write_text(text), os._exit(9))
        export("softmax", [{str(runs["softmax"] / "37x301")!r}], {str(out)!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert r.returncode == 9
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    export("softmax", [runs["softmax"] / "37x301"], out)  # a later export replaces it
    table = json.loads((out / "softmax_configs.json").read_text())
    assert [e["shape_key"] for e in table["entries"]] == ["37x301"]


def test_kernel_hash_follows_the_source_it_needs(tmp_path):
    module = tmp_path / "kernel.py"
    base = textwrap.dedent("""
        import triton
        import triton.language as tl
        from eggsearch.ops.base import next_pow2

        SCALE = 2.0


        @triton.jit
        def _double_kernel(x_ptr, y_ptr, N, BLOCK: tl.constexpr):
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
            tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < N) * SCALE, mask=offs < N)


        def unrelated():
            return 1


        def launch(x, *, out, num_warps):
            block = next_pow2(min(x.numel(), 1024))
            _double_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), BLOCK=block,
                                                             num_warps=num_warps)
    """)
    module.write_text(base)
    first = structure_sha256(str(module), "launch")
    module.write_text(base.replace("return 1", "return 2"))
    assert structure_sha256(str(module), "launch") == first  # not part of the closure
    module.write_text(base.replace("SCALE = 2.0", "SCALE = 3.0"))
    assert structure_sha256(str(module), "launch") != first
    module.write_text(base.replace("import triton\n", "import triton\nimport requests\n")
                      .replace("def launch(x", "def launch(x, s=requests"))
    with pytest.raises(SourceError, match="only torch, triton and the standard library"):
        structure_sha256(str(module), "launch")


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory) -> Path:
    import optuna

    tmp_path = tmp_path_factory.mktemp("bad")
    recorded(tmp_path, ops=("softmax",))
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'empty.db'}")  # holds another study
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--op", "convolution"], "unknown op 'convolution'"),
    (["--op", "matmul", "--runs", "{tmp}/nowhere"], "no such run directory"),
    (["--op", "matmul", "--runs", "{tmp}"], "no run directory of op 'matmul'"),
    (["--op", "softmax", "--runs", "{tmp}/runs", "--storage", "sqlite:///{tmp}/none.db"],
     "no such database file"),
    (["--op", "softmax", "--runs", "{tmp}/runs", "--top-k", "0"], "--top-k"),
    (["--op", "softmax", "--runs", "{tmp}/runs", "--out", "{tmp}/runs"], "not an eggsearch "
     "export"),
    (["--op", "softmax", "--runs", "{tmp}/runs", "--storage", "sqlite:///{tmp}/empty.db"],
     "cannot open study"),
    (["--op", "matmul", "--runs", "{tmp}/runs", "--top-k", "two"], "invalid int"),
])
def test_bad_arguments_one_line_exit_2(recorded_once, capsys, args, message):
    tmp_path = recorded_once
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "export")]
    assert cli("export", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing


@pytest.mark.parametrize("text, extra, message", [
    ("shapes:\n  softmax: [9x3000]\n", [], "lists no shapes for matmul (it lists: softmax)"),
    ("shapes:\n  matmul: [12x12]\n", [], "malformed shape"),
    ("shapes:\n  matmul: [{shape: 8x8x8, size: 2}]\n", [], "unknown key(s) size"),
    ("shapes:\n  matmul: [8x8x8, {shape: 8x8x8}]\n", [], "the same name or problem"),
    ("shapes:\n  matmul: []\n", [], "expected a non-empty list"),
    ("shapes: [\n", [], "does not parse"),
    ("shapes:\n  matmul: [8x8x8]\n", ["--shape", "8x8x8"], "--shape or --shapes"),
])
def test_bad_shapes_file_one_line_exit_2(tmp_path, capsys, text, extra, message):
    (tmp_path / "shapes.yaml").write_text(text)
    out = tmp_path / "runs"
    assert cli("run", "--op", "matmul", "--backend", "interpreter", "--shapes",
               str(tmp_path / "shapes.yaml"), "--out", str(out), *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.gpu
def test_exported_matmul_on_the_gpu(tmp_path):
    """On a GPU: tune, export, and the module in a fresh process dispatches the tuned config
    without a provenance warning and computes right."""
    # eggsearch first; packages the host put on PYTHONPATH (the GPU machine's optuna) after it
    env = {**os.environ, "TRITON_INTERPRET": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "eggsearch", "run", "--op", "matmul", "--shape",
                        "1024x1024x1024", "--trials", "6", "--backend", "gpu", "--out",
                        str(tmp_path / "runs" / "mm")], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    export("matmul", [tmp_path / "runs"], tmp_path / "export")
    r = run_child(tmp_path, f"""
        warnings.simplefilter("error")
        m = load({str(tmp_path / "export")!r}, "matmul", "exported_matmul")
        a, b = (torch.randn(1024, 1024, device="cuda").half() for _ in range(2))
        assert m.choose(a, b).how == "exact"
        close(m.matmul(a, b), a.double() @ b.double(), 3e-2, 3e-2)
        a, b = torch.randn(1000, 1000, device="cuda").half(), torch.randn(1000, 776,
                                                                         device="cuda").half()
        assert m.choose(a, b).how == "bucket"
        close(m.matmul(a, b), a.double() @ b.double(), 3e-2, 3e-2)
    """, interpret=False)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


@pytest.mark.parametrize("op_name", ["matmul", "attention", "softmax", "layernorm", "rmsnorm",
                                     "matmul_epilogue", "swiglu", "cross_entropy",
                                     "add_rmsnorm"])
def test_every_structure_exports_self_contained(op_name, tmp_path):
    """Each structure's launcher (Triton or Gluon) comes out of eggsearch with all it uses:
    the code imports only torch, triton and the standard library and defines the launcher."""
    import importlib.util

    from eggsearch.export.source import kernel_source
    from eggsearch.ops import get_op

    op = get_op(op_name)
    for structure, launcher in op.structures.items():
        source = kernel_source({structure: (launcher.__module__, launcher.__name__)}, op)
        # as writer.module_text lays it out: postponed annotations, imports, definitions
        code = ("from __future__ import annotations\n" + "\n".join(source.imports) + "\n\n"
                + source.text())
        assert "eggsearch" not in "\n".join(line for line in code.splitlines()
                                            if "import" in line), structure
        path = tmp_path / f"exported_{op_name}_{structure}.py"  # jit needs a source file
        path.write_text(code)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses look their module up
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules[path.stem]
        assert callable(getattr(module, launcher.__name__)), structure
