"""Cross-entropy loss per row over a large vocabulary, never materialising the softmax:
``loss[i] = logsumexp(logits[i, :]) - logits[i, targets[i]]``.

``logits`` [M, V] (fp32, bf16 or fp16), ``targets`` int64 [M] in [0, V); the loss is fp32 [M]
whatever the logits' dtype (reduction 'none'), computed in fp32.

The log-sum-exp is online and lane-wise: every lane of a BLOCK_V-wide vector keeps its own
running max ``m`` and sum ``s`` of exp(x - m) over the blocks it sees, updated with one exp per
element (``e = exp(-|x - m|)``; if x is a new max, ``s = s * e + 1``, else ``s = s + e``), and
the lanes are combined once at the end. Lanes start at m = -FLT_MAX, not -inf, so a masked lane
(x = -inf) gives exp(-inf) = 0 rather than exp(nan).

Structures:
    online   one row per program, looping over V in blocks; the target logit is read once.
    split_v  several programs per row, each reducing one chunk of V to a partial (max, sum) in
             an fp32 workspace [M, splits]; a small kernel combines them and reads the target
             logit. For few rows (M small against the number of SMs).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import DEFAULT_TOLERANCES, OpSpec, Problem, torch_dtype

_FLT_LOWEST = tl.constexpr(-3.4028234663852886e38)
# The combine kernel of split_v: a few bytes per row, so any small tile does.
COMBINE_BLOCK_R = 16
COMBINE_NUM_WARPS = 4


@triton.jit
def _ce_chunk_lse(row_ptr, start, end, BLOCK_V: tl.constexpr):
    """(max, sum of exp(x - max)) over row_ptr[start:end], both fp32 scalars."""
    m = tl.full((BLOCK_V,), _FLT_LOWEST, tl.float32)
    s = tl.zeros((BLOCK_V,), tl.float32)
    for block in range(start, end, BLOCK_V):
        cols = block + tl.arange(0, BLOCK_V)
        x = tl.load(row_ptr + cols, mask=cols < end, other=float("-inf"),
                    eviction_policy="evict_first").to(tl.float32)
        e = tl.exp(-tl.abs(x - m))
        s = tl.where(x > m, s * e + 1.0, s + e)
        m = tl.maximum(m, x)
    m_all = tl.max(m, axis=0)
    return m_all, tl.sum(s * tl.exp(m - m_all), axis=0)


@triton.jit
def _cross_entropy_online_kernel(logits_ptr, targets_ptr, loss_ptr, V, stride_lm,
                                 BLOCK_V: tl.constexpr):
    """One row of ``logits`` [M, V] per program (grid (M,)).

    targets_ptr: int64 [M]; loss_ptr: fp32 [M]. stride_lm: row stride of logits (columns are
    contiguous). BLOCK_V: columns per step (a power of two).
    """
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * stride_lm
    m, s = _ce_chunk_lse(row_ptr, 0, V, BLOCK_V)
    target_logit = tl.load(row_ptr + tl.load(targets_ptr + row)).to(tl.float32)
    tl.store(loss_ptr + row, m + tl.log(s) - target_logit)


@triton.jit
def _cross_entropy_partial_kernel(logits_ptr, max_ptr, sum_ptr, V, stride_lm, chunk, splits,
                                  BLOCK_V: tl.constexpr):
    """Program (row, k) of a (M, splits) grid writes the max and the sum of exp(x - max) of
    logits[row, k * chunk : (k + 1) * chunk] to max_ptr/sum_ptr[row * splits + k] (fp32).

    chunk: a multiple of BLOCK_V; the last chunk may be short. Other arguments as in
    :func:`_cross_entropy_online_kernel`.
    """
    row = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1)
    start = k * chunk
    m, s = _ce_chunk_lse(logits_ptr + row * stride_lm, start, min(start + chunk, V), BLOCK_V)
    tl.store(max_ptr + row * splits + k, m)
    tl.store(sum_ptr + row * splits + k, s)


@triton.jit
def _cross_entropy_combine_kernel(max_ptr, sum_ptr, logits_ptr, targets_ptr, loss_ptr, M,
                                  splits, stride_lm, BLOCK_R: tl.constexpr,
                                  BLOCK_S: tl.constexpr):
    """loss for BLOCK_R rows per program from their ``splits`` partials (max_ptr, sum_ptr:
    fp32 [M, splits]) and the target logits. BLOCK_S: next power of two >= splits."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    ks = tl.arange(0, BLOCK_S)
    row_ok = rows < M
    mask = row_ok[:, None] & (ks[None, :] < splits)
    offs = rows.to(tl.int64)[:, None] * splits + ks[None, :]
    m = tl.load(max_ptr + offs, mask=mask, other=_FLT_LOWEST)
    s = tl.load(sum_ptr + offs, mask=mask, other=0.0)
    m_all = tl.max(m, axis=1)
    total = tl.where(row_ok, tl.sum(s * tl.exp(m - m_all[:, None]), axis=1), 1.0)
    targets = tl.load(targets_ptr + rows, mask=row_ok, other=0)
    target_logit = tl.load(logits_ptr + rows.to(tl.int64) * stride_lm + targets, mask=row_ok,
                           other=0.0).to(tl.float32)
    tl.store(loss_ptr + rows, m_all + tl.log(total) - target_logit, mask=row_ok)


# ---- launchers -------------------------------------------------------------------------------
def _check_operands(logits, targets, out) -> tuple[int, int]:
    M, V = logits.shape
    if (tuple(targets.shape) != (M,) or targets.dtype != torch.int64
            or tuple(out.shape) != (M,) or out.dtype != torch.float32
            or logits.stride(1) != 1):
        raise ValueError(f"cross_entropy: logits {tuple(logits.shape)} (contiguous rows), "
                         f"targets {tuple(targets.shape)} {targets.dtype}, out "
                         f"{tuple(out.shape)} {out.dtype} do not fit")
    return M, V


def launch_online(logits, targets, *, out, BLOCK_V, num_warps):
    M, V = _check_operands(logits, targets, out)
    _cross_entropy_online_kernel[(M,)](logits, targets, out, V, logits.stride(0),
                                       BLOCK_V=BLOCK_V, num_warps=num_warps)


def launch_split_v(logits, targets, *, out, BLOCK_V, SPLIT_V, num_warps):
    M, V = _check_operands(logits, targets, out)
    # Whole blocks per chunk; when SPLIT_V does not divide them the last chunk is short, and
    # chunks that would be empty are not launched.
    chunk = triton.cdiv(triton.cdiv(V, BLOCK_V), SPLIT_V) * BLOCK_V
    splits = triton.cdiv(V, chunk)
    partial_max = torch.empty((M, splits), dtype=torch.float32, device=logits.device)
    partial_sum = torch.empty_like(partial_max)
    _cross_entropy_partial_kernel[(M, splits)](
        logits, partial_max, partial_sum, V, logits.stride(0), chunk, splits,
        BLOCK_V=BLOCK_V, num_warps=num_warps)
    _cross_entropy_combine_kernel[(triton.cdiv(M, COMBINE_BLOCK_R),)](
        partial_max, partial_sum, logits, targets, out, M, splits, logits.stride(0),
        BLOCK_R=COMBINE_BLOCK_R, BLOCK_S=triton.next_power_of_2(splits),
        num_warps=COMBINE_NUM_WARPS)


class CrossEntropy(OpSpec):
    name = "cross_entropy"
    summary = "per-row cross-entropy loss over a large vocabulary (fp32 losses)"
    dims = ("M", "V")
    default_shape = (8192, 128256)  # LLaMA-3's vocabulary
    named_shapes = {"llama3": (8192, 128256), "llama2": (8192, 32000)}  # tokens x vocabulary
    interpreter_shape = (37, 1031)
    structures = {"online": launch_online, "split_v": launch_split_v}

    def make_inputs(self, problem: Problem, seed: int, device: str):
        M, V = problem.shape
        g = torch.Generator(device=device).manual_seed(seed)
        # A random offset per row up to 100: exp(100) overflows fp32, so a kernel that skips
        # the running max fails; the loss itself does not depend on the offset.
        offset = torch.rand(M, 1, generator=g, device=device) * 120 - 20
        logits = (2 * torch.randn(M, V, generator=g, device=device) + offset)
        targets = torch.randint(0, V, (M,), generator=g, device=device)
        return logits.to(torch_dtype(problem.dtype)), targets

    def output_shape(self, problem: Problem):
        return (problem.shape[0],)

    def outputs(self, problem: Problem):
        return [(self.output_shape(problem), "fp32")]

    def reference(self, logits, targets):
        # What a user writes for 16-bit logits: upcast, then PyTorch's loss (for fp32 logits
        # .float() is a no-op, so the baseline is F.cross_entropy on the logits themselves).
        return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")

    def truth(self, logits, targets):
        return torch.nn.functional.cross_entropy(logits.double(), targets, reduction="none")

    def tolerance(self, problem: Problem):
        # The loss is fp32 and computed in fp32 from logits that fp32 holds exactly, whatever
        # their dtype: the only error is fp32 arithmetic, so fp32's bounds apply to all.
        return DEFAULT_TOLERANCES["fp32"]

    def flops(self, problem: Problem) -> float:
        M, V = problem.shape
        return 4.0 * M * V  # max, subtract, exp, add per logit

    def min_bytes(self, problem: Problem) -> float:
        M, V = problem.shape
        return float(M * V * problem.elem_bytes + M * 8 + M * 4)  # logits, targets, loss


OP = CrossEntropy()
