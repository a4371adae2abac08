"""The offline proposer: every problem in set/ is covered, and its ModelNew passes the protocol
in one pass and looped (small blocks), on the interpreter at the files' SMALL sizes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from eggsearch.errors import UsageError
from eggsearch.problems.anticheat import Integrity
from eggsearch.problems.fusion import describe, partition
from eggsearch.problems.generate import build, hardware_env
from eggsearch.problems.graph import trace
from eggsearch.problems.loader import load_problem, load_solution
from eggsearch.problems.run import with_config
from eggsearch.problems.verifier import Protocol, verify

HERE = Path(__file__).resolve().parent
PROBLEMS = sorted((HERE / "set").glob("*.py"))
EXTRA = sorted((HERE / "extra").glob("*.py"))  # cases the set does not exercise
ENV = hardware_env("cpu")


def small_blocks(config: dict) -> dict:
    """Blocks smaller than every SMALL row: the looped row kernels, several GEMM K steps."""
    out = dict(config)
    for k in out:
        for suffix, v in (("BLOCK_C", 16), ("BLOCK_R", 2), ("BLOCK", 128), ("BLOCK_M", 16),
                          ("BLOCK_N", 16), ("BLOCK_K", 16)):
            if k.endswith("_" + suffix):
                out[k] = v
    return out


def check(problem, source: str, tmp_path: Path, name: str):
    """The full protocol (five trials and a second shape)."""
    path = tmp_path / name
    path.write_text(source)
    return verify(problem, load_solution(path), "cpu", Integrity.capture())


def one_trial(problem, source: str, tmp_path: Path, name: str, seed: int) -> None:
    """One trial of the protocol (answer first, op recording, comparison): raises if wrong.
    The interpreter is slow, so the generator's 26 x 2 answers get one trial each."""
    path = tmp_path / name
    path.write_text(source)
    Protocol(problem, load_solution(path), "cpu", Integrity.capture()).trial(
        problem.inputs(seed, "cpu"))


def test_the_set_covers_kernelbench_categories():
    assert len(PROBLEMS) >= 20
    names = " ".join(p.stem for p in PROBLEMS)
    for word in ("matmul", "bmm", "gelu", "softmax", "layernorm", "rmsnorm", "sum", "argmax",
                 "mse", "cross_entropy", "gemm", "conv2d"):
        assert word in names, word


@pytest.mark.parametrize("path", PROBLEMS + EXTRA, ids=lambda p: p.stem)
def test_generated_answer_is_correct(path, tmp_path):
    problem = load_problem(path, small=True)
    gen = build(problem, ENV)
    one_trial(problem, gen.source, tmp_path, "answer.py", seed=11)
    if any(" row " in g or "gemm" in g or "conv" in g for g in gen.groups):
        looped = with_config(gen.source, small_blocks(gen.config))
        one_trial(problem, looped, tmp_path, "looped.py", seed=12)


@pytest.mark.parametrize("name", ["14_cross_entropy.py", "23_conv2d_groupnorm_scale.py"])
def test_generated_answer_passes_the_whole_protocol(name, tmp_path):
    problem = load_problem(HERE / "set" / name, small=True)
    v = check(problem, build(problem, ENV).source, tmp_path, "answer.py")
    assert v.status == "correct" and v.trials == 6 and v.second_shape, v


def test_answer_imports_only_torch_and_triton():
    gen = build(load_problem(HERE / "set" / "23_conv2d_groupnorm_scale.py", small=True), ENV)
    modules = set()
    for node in ast.walk(ast.parse(gen.source)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules == {"torch", "triton"}
    assert "class ModelNew(_Reference)" in gen.source and "def get_inputs" not in gen.source
    # the convolution is a kernel too: nothing that computes is left in PyTorch
    assert "aten.convolution" not in gen.source and gen.leftovers == ()


@pytest.mark.parametrize("name, groups", [
    ("19_gemm_gelu_softmax.py", ["gemm: addmm gelu", "row O=9 C=70 I=1: amax sub exp sum div"]),
    ("25_leaky_relu.py", ["pointwise: gt mul where"]),
    ("09_sum_dim1.py", ["row O=5 C=37 I=19: sum"]),
    ("13_mse_loss.py", ["row O=13 C=129 I=1: sub pow mean"]),
    # The targets' ignore-index bookkeeping is per-row: computed in the row kernel itself, not
    # in three small kernels of its own.
    ("14_cross_entropy.py", ["row O=17 C=131 I=1: amax sub exp sum log sub ne where unsqueeze "
                             "gather squeeze neg ne where ne sum _to_copy sum div"]),
])
def test_fusion_groups(name, groups):
    plan = partition(trace(load_problem(HERE / "set" / name, small=True)))
    assert [re.sub(r"^g\d+ ", "", d) for d in describe(plan)] == groups


def forward_of(source: str) -> str:
    return source[source.index("def _forward("):source.index("class ModelNew")]


def test_leftovers_nothing_reads_are_not_emitted():
    # cross-entropy's trace has two scalar_tensor constants that the row kernel inlines: each
    # would be a launch (a host cost per call) if emitted
    problem = load_problem(HERE / "set" / "14_cross_entropy.py", small=True)
    assert any("scalar_tensor" in str(n.target) for n in trace(problem).nodes)
    fwd = forward_of(build(problem, ENV).source)
    assert "scalar_tensor" not in fwd and fwd.count("_g0(") == 1
    # a leftover that a group reads stays (a depthwise convolution, which stays in PyTorch)
    gen = build(load_problem(HERE / "extra" / "depthwise_conv_bias_mean.py", small=True), ENV)
    assert gen.leftovers == ("aten.convolution",)
    assert "aten.convolution" in forward_of(gen.source)


@pytest.mark.parametrize("name, like", [("25_leaky_relu.py", True), ("05_softmax.py", True),
                                        ("11_argmax.py", False), ("13_mse_loss.py", False)])
def test_outputs_shaped_like_an_input_are_allocated_with_empty_like(name, like):
    source = build(load_problem(HERE / "set" / name, small=True), ENV).source
    assert ("o0 = torch.empty_like(t0)" in source) == like
    assert ("o0 = torch.empty(o0_shape" in source) == (not like)


@pytest.mark.parametrize("name, tile", [("01_matmul.py", (128, 64, 32)),
                                        ("16_bmm.py", (128, 32, 64)),
                                        ("02_matmul_transposed_b.py", (128, 64, 32)),
                                        ("10_gemm_bias_relu.py", (128, 64, 32))])
def test_fp32_gemm_default_tile_follows_the_layout_of_b(name, tile):
    # measured on an H200: wider N tiles where B is contiguous along K (a transposed weight, or
    # B copied so), narrow ones where B stays contiguous along N; at the GPU sizes
    gen = build(load_problem(HERE / "set" / name, small=False), hardware_env("cpu"))
    config = gen.config
    assert (config["g0_BLOCK_M"], config["g0_BLOCK_N"], config["g0_BLOCK_K"]) == tile
    assert config["g0_PRECISION"] == "tf32x3"
    if config.get("g0_B_K_MAJOR"):  # the next seed keeps B as it is, with the narrow tile
        second = gen.space["seeds"][1]
        assert second["g0_B_K_MAJOR"] is False
        assert (second["g0_BLOCK_M"], second["g0_BLOCK_N"], second["g0_BLOCK_K"]) == (128, 32, 64)


def test_uncovered_problem_gets_no_answer(tmp_path):
    problem = tmp_path / "bn.py"
    problem.write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.bn = nn.BatchNorm2d(4)\n\n"
        "    def forward(self, x):\n        return self.bn(x)\n\n\n"
        "def get_inputs():\n    return [torch.randn(3, 4, 5, 6)]\n\n\n"
        "def get_init_inputs():\n    return []\n")
    with pytest.raises(UsageError, match="not covered"):
        build(load_problem(problem), ENV)


def test_sizes_equal_at_trace_time_stay_distinct(tmp_path):
    """Traced with batch == channels and height == width, the answer still reads each size
    from its own place (no duck shaping), so it is right where they differ."""
    problem = load_problem(HERE / "set" / "21_conv2d_relu_biasadd.py", small=True)
    with problem.sizes_applied({"batch_size": 5, "height": 11, "width": 11}):
        gen = build(problem, ENV)  # out_channels is 5 too
    one_trial(problem, gen.source, tmp_path, "answer.py", seed=13)  # batch 2, 9 x 11


@pytest.mark.parametrize("name, groups", [
    ("21_conv2d_relu_biasadd.py", ["conv: convolution add relu add"]),
    ("22_conv2d_gelu_avgpool.py", ["conv: convolution add gelu",
                                   "row O=10 C=40 I=1: mean squeeze squeeze"]),
    ("23_conv2d_groupnorm_scale.py", [
        "conv: convolution add view",
        "row O=6 C=84 I=1: var broadcast_in_dim sum broadcast_in_dim div add rsqrt sub mul view "
        "mul add squeeze squeeze mul"]),
])
def test_a_convolution_is_an_implicit_gemm_with_its_bias_in_the_epilogue(name, groups):
    # PyTorch adds a convolution's bias in a broadcast kernel of its own (a full read and write
    # of the output); traced as convolution-without-bias + add, the add joins the convolution's
    # epilogue, read once per output channel (column) of the tile
    problem = load_problem(HERE / "set" / name, small=True)
    assert [re.sub(r"^g\d+ ", "", d) for d in describe(partition(trace(problem)))] == groups
    gen = build(problem, ENV)
    assert "tl.load(in0_ptr + rn[None, :], mask=(rn < OC)[None, :]" in gen.source
    fwd = forward_of(gen.source)
    assert "aten.convolution" not in fwd and fwd.count("_g0(") == 1
    # only what the next kernel reads is stored: the sizes that group norm reads off its view
    # of the convolution do not make the kernel write that view out
    assert re.search(r"^    n_\w+, = _g0\(", fwd, re.M)


def test_convolution_geometry_and_channel_bounds(tmp_path):
    # padding, stride and dilation, different along H and W, and 20 input channels (no
    # multiple of BLOCK_K): the padded loads mask each tap's rows, the channel tail is masked
    problem = load_problem(HERE / "extra" / "conv2d_padded_strided_dilated.py", small=True)
    gen = build(problem, ENV)
    assert "ih0 = (pix // OW) * 2 - 1" in gen.source and "iw0 = (pix % OW) - 2" in gen.source
    assert "inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)" in gen.source
    v = check(problem, gen.source, tmp_path, "answer.py")
    assert v.status == "correct" and v.second_shape, v
    # by default the weight is split into TF32 parts once per call (fp32 in three TF32
    # products); A's tile in the other orientation (pixels along the fast axis) and Triton's own
    # tf32x3 in the loop are right too
    assert gen.config["g0_A_M_FAST"] is False and gen.config["g0_W_SPLIT"] is True
    assert "tb, tb_lo = _tf32_split(tb) if cfg['g0_W_SPLIT'] else (tb, tb)" in gen.source
    for change in ({"g0_A_M_FAST": True}, {"g0_W_SPLIT": False}):
        other = with_config(gen.source, {**gen.config, **change})
        one_trial(problem, other, tmp_path, "other.py", seed=16)
    # without padding no tap of a valid output pixel leaves the input: no bounds at all
    unpadded = build(load_problem(HERE / "set" / "21_conv2d_relu_biasadd.py", small=True), ENV)
    assert "inside" not in unpadded.source
    assert "a = tl.load(a_tap[:, None] + (c0 + rk)[None, :] * stride_xc)\n" in unpadded.source


@pytest.mark.parametrize("name", ["21_conv2d_relu_biasadd.py", "23_conv2d_groupnorm_scale.py",
                                  "09_sum_dim1.py"])
def test_offsets_are_int32_where_they_fit_and_int64_otherwise(name, tmp_path):
    import triton.language as tl

    from eggsearch.problems.kernels import INDEX_SOURCE

    ns = {"tl": tl}
    exec(INDEX_SOURCE, ns)
    assert ns["_idx"](2 ** 31 - 2 ** 24) is tl.int32
    assert ns["_idx"](2 ** 31 - 2 ** 24 + 1) is tl.int64
    problem = load_problem(HERE / "set" / name, small=True)
    gen = build(problem, ENV)
    assert INDEX_SOURCE in gen.source
    assert ("    IDX = _idx(NUMEL)" in gen.source
            or "    IDX = _idx(max(ta.numel(), M * OC))" in gen.source)
    assert "'IDX': IDX" in gen.source
    kernels = gen.source[gen.source.index("def _idx"):gen.source.index("# ---- the tuned")]
    assert ".to(IDX)" in kernels
    # no int64 offsets left: only argmax's int64 results
    assert kernels.count(".to(tl.int64)") == kernels.count("axis=1).to(tl.int64)")
    # the int64 path, forced at the SMALL sizes (the interpreter cannot allocate 2**31 elements)
    wide = gen.source.replace("_INT32_NUMEL = 2 ** 31 - 2 ** 24", "_INT32_NUMEL = 0")
    one_trial(problem, wide, tmp_path, "wide.py", seed=13)
    one_trial(problem, with_config(wide, small_blocks(gen.config)), tmp_path, "wide_looped.py",
              seed=14)


@pytest.mark.parametrize("name, copy", [("01_matmul.py", True), ("16_bmm.py", False)])
def test_fp32_gemm_may_copy_an_n_contiguous_b_to_k_contiguous(name, copy, tmp_path):
    # tf32 tensor-core MMAs take B contiguous along K: a B contiguous along N (plain matmul,
    # bmm) may be copied first; by default where A has many rows (01: M = 4096; not 16's
    # M = 512, where the copy costs more than it saves)
    full = build(load_problem(HERE / "set" / name, small=False), ENV)
    assert full.config["g0_B_K_MAJOR"] is copy
    assert full.space["params"]["g0_B_K_MAJOR"] == {"choices": [True, False]}
    problem = load_problem(HERE / "set" / name, small=True)
    gen = build(problem, ENV)
    assert "tb = tb.transpose(-1, -2).contiguous().transpose(-1, -2)" in gen.source
    for copy in (True, False):
        source = with_config(gen.source, {**gen.config, "g0_B_K_MAJOR": copy})
        one_trial(problem, source, tmp_path, f"copy_{copy}.py", seed=15)
    # a B that already is K-contiguous (a linear layer's weight) is never copied
    gen = build(load_problem(HERE / "set" / "02_matmul_transposed_b.py", small=True), ENV)
    assert "g0_B_K_MAJOR" not in gen.config and "tb = tb" not in gen.source


@pytest.mark.parametrize("name, blocks", [
    ("22_conv2d_gelu_avgpool.py", (1, 4096, 16)),     # stores one value per row: loop
    ("11_argmax.py", (1, 4096, 16)),
    ("23_conv2d_groupnorm_scale.py", (1, 4096, 8)),   # rows too long to hold: loop
    ("05_softmax.py", (1, 8192, 16)),                 # stores whole rows: hold one in registers
    ("09_sum_dim1.py", (64, 32, 8)),                  # rows along I, a long reduced dimension
    ("08_rmsnorm.py", (64, 64, 8)),                   # rows along I, 64 channels
])
def test_row_default_blocks_follow_what_the_group_stores(name, blocks):
    gen = build(load_problem(HERE / "set" / name, small=False), ENV)
    p = next(d.split()[0] for d in gen.groups if " row " in d) + "_"
    config = gen.config
    assert (config[p + "BLOCK_R"], config[p + "BLOCK_C"], config[p + "num_warps"]) == blocks


def test_a_per_channel_operand_over_rows_of_one_channel_is_loaded_once_per_row():
    # rows are (batch, channel) planes of H * W, the bias is per channel: it is read at
    # rows % channels, with no per-element division
    gen = build(load_problem(HERE / "extra" / "depthwise_conv_bias_mean.py", small=True), ENV)
    assert "(rows[:, None] % size0), mask=rmask[:, None]" in gen.source
    assert "//" not in gen.source[gen.source.index("def _g0_one"):gen.source.index("def _g0(")]


def test_the_weight_split_is_exact_and_its_high_part_is_tf32():
    import torch
    import triton
    import triton.language as tl

    from eggsearch.problems.convkernel import TF32_SOURCE
    from eggsearch.problems.launch import LAUNCH_SOURCE

    ns = {"torch": torch, "triton": triton, "tl": tl}
    exec(LAUNCH_SOURCE + "\n\n" + TF32_SOURCE, ns)
    w = torch.randn(7, 5, 3, 3, dtype=torch.float32).transpose(0, 1)  # not contiguous
    w[0, 0, 0, 0] = 1 + 2 ** -11  # a tie: rounds away from zero
    w[0, 0, 0, 1] = 0.0
    hi, lo = ns["_tf32_split"](w)
    assert hi.shape == w.shape and hi.is_contiguous() and lo.is_contiguous()
    assert torch.equal(hi + lo, w)                                  # exact
    assert not (hi.view(torch.int32) & 0x1FFF).any()                # 10 mantissa bits left
    assert (lo.abs() <= hi.abs() * 2 ** -11).all()                  # rounded to nearest
    assert hi[0, 0, 0, 0] == 1 + 2 ** -10 and hi[0, 0, 0, 1] == 0


def test_the_weight_is_split_by_default_only_for_shallow_convolutions():
    # splitting the weight accumulates three products per step into the result: its error
    # grows with the GEMM's depth (C * KH * KW), so deep convolutions start from tf32x3
    from eggsearch.problems.spaces import conv_space

    for depth, split in ((144, True), (1024, True), (4608, False)):
        _, seeds, _ = conv_space(4, True, 10 ** 6, 64, depth // 9, depth)
        assert seeds[0]["W_SPLIT"] is split and seeds[2]["W_SPLIT"] is not split
    _, seeds, _ = conv_space(2, False, 10 ** 6, 64, 16, 144)  # fp16: no split
    assert all("W_SPLIT" not in s for s in seeds)


CONV_PROBLEM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d({cin}, 32, {k}, stride={s}, padding={p})

    def forward(self, x):
        return torch.relu(self.conv(x))


def get_inputs():
    return [torch.randn(2, {cin}, 12, 12)]


def get_init_inputs():
    return []
'''


@pytest.mark.parametrize("cin, k, s, p, generated", [
    (16, 3, 1, 1, True),     # depth 144
    (64, 3, 1, 1, True),     # depth 576: the deepest measured win
    (128, 3, 1, 1, False),   # depth 1152: cuDNN was 3x faster
    (3, 7, 2, 3, False),     # the 3-channel stem: cuDNN was 1.7x faster
])
def test_a_convolution_is_generated_only_where_it_was_measured_to_win(cin, k, s, p, generated,
                                                                      tmp_path):
    path = tmp_path / "conv.py"
    path.write_text(CONV_PROBLEM.format(cin=cin, k=k, s=s, p=p))
    gen = build(load_problem(path, small=False), ENV)
    assert any(" conv: convolution" in d for d in gen.groups) is generated
    # otherwise the convolution stays in PyTorch and its bias and ReLU are fused after it
    assert gen.leftovers == (() if generated else ("aten.convolution",))
    assert generated or gen.groups == ("g0 pointwise: add relu",)


def test_a_looped_variance_is_one_sweep_and_stable_far_from_zero(tmp_path):
    # group norm's rows are too long to hold: its statistics take one sweep (Welford per slot,
    # merged with Chan's formula), then one more sweep normalizes and stores
    gen = build(load_problem(HERE / "set" / "23_conv2d_groupnorm_scale.py", small=True), ENV)
    loop = gen.source[gen.source.index("def _g1_loop"):gen.source.index("def _g1(")]
    assert loop.count("for c0 in range(0, C, BLOCK_C):") == 2
    assert "_welford_combine" in loop
    # values around 100 with unit spread: E[x^2] - E[x]^2 in fp32 would lose the variance to
    # ~1e-3 (the normwise bound is ~3e-5); at 1000 the plain fp32 mean itself is too coarse
    path = tmp_path / "layernorm_offset.py"
    path.write_text('''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(300)

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [100.0 + torch.randn(7, 300)]


def get_init_inputs():
    return []
''')
    problem = load_problem(path, small=False)
    gen = build(problem, ENV)
    looped = with_config(gen.source, small_blocks(gen.config))  # 16 columns a step: looped
    one_trial(problem, looped, tmp_path, "looped.py", seed=17)
