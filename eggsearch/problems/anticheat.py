"""Anti-cheat guards for answers (``ModelNew``) run by the verifier.

* :class:`OpRecorder` records the ATen ops a forward calls (a ``TorchDispatchMode``: it sees
  every PyTorch op, on any stream, whether called directly or from a ``try/except`` fallback;
  Triton kernels are not PyTorch ops and are not seen). :func:`main_ops` decides which ops carry
  the problem's computation, and :func:`forbidden_calls` which of an answer's calls are cheats.
* :class:`Integrity` snapshots, before an answer is imported, what it must not change: the
  functions of ``time``, ``torch``, ``torch.cuda``, ``triton.testing`` and the verifier itself
  (patching a timer or a comparison), PyTorch's precision switches (TF32), and the number of
  live threads (work left running in a background thread after ``forward`` returns).
* :func:`poison_allocator` fills freed memory of the output's sizes with NaN, so an output that
  is never written cannot inherit the reference's freed result.
"""

from __future__ import annotations

import _thread
import importlib
import threading
from collections.abc import Iterable

from torch.utils._python_dispatch import TorchDispatchMode

# ATen ops grouped by what they compute. An answer may not call an op of a family the
# reference's main computation uses; heavy families are also off limits unless allowed below.
FAMILIES: dict[str, frozenset[str]] = {
    "matmul": frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "mv", "addmv",
                         "dot", "vdot", "linear", "_scaled_mm", "einsum", "tensordot", "addr",
                         "outer", "_addmm_activation", "addmm_", "chain_matmul"}),
    "conv": frozenset({"convolution", "_convolution", "conv1d", "conv2d", "conv3d",
                       "cudnn_convolution", "convolution_overrideable", "mkldnn_convolution",
                       "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                       "cudnn_convolution_transpose", "_slow_conv2d_forward",
                       "slow_conv3d_forward", "slow_conv_transpose2d", "thnn_conv2d"}),
    "attention": frozenset({"_scaled_dot_product_flash_attention",
                            "_scaled_dot_product_efficient_attention",
                            "_scaled_dot_product_cudnn_attention",
                            "scaled_dot_product_attention", "_flash_attention_forward"}),
    "softmax": frozenset({"_softmax", "_log_softmax", "softmax", "log_softmax",
                          "_safe_softmax"}),
    "norm": frozenset({"native_layer_norm", "layer_norm", "native_batch_norm",
                       "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                       "_native_batch_norm_legit_functional", "batch_norm", "native_group_norm",
                       "group_norm", "instance_norm", "_fused_rms_norm", "rms_norm",
                       "linalg_vector_norm", "norm", "renorm", "frobenius_norm"}),
    "reduction": frozenset({"sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin",
                            "var", "std", "var_mean", "std_mean", "prod", "logsumexp",
                            "cumsum", "cumprod", "nansum", "median", "aminmax"}),
    "loss": frozenset({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss",
                       "nll_loss_forward", "nll_loss2d_forward", "binary_cross_entropy",
                       "binary_cross_entropy_with_logits", "kl_div", "soft_margin_loss",
                       "hinge_embedding_loss", "margin_ranking_loss", "cosine_embedding_loss",
                       "triplet_margin_loss", "multilabel_margin_loss_forward",
                       "cross_entropy_loss", "cosine_similarity"}),
    "pooling": frozenset({"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                          "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                          "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                          "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
                          "adaptive_max_pool2d", "adaptive_max_pool3d"}),
}
HEAVY = frozenset(FAMILIES)
# Library primitives an answer may keep in PyTorch where the reference has them, provided the
# reference also does other work for the answer's kernels (the conv + epilogue problems).
LIBRARY = frozenset({"conv"})
# Ops that move, view, allocate or cast data: never a problem's computation.
NEUTRAL = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros",
    "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full",
    "fill_", "zero_", "copy_", "_to_copy", "clone", "contiguous", "view", "_unsafe_view",
    "reshape", "_reshape_alias", "t", "transpose", "permute", "expand", "as_strided", "detach",
    "alias", "slice", "select", "unsqueeze", "squeeze", "flatten", "unflatten", "split",
    "split_with_sizes", "chunk", "unbind", "cat", "stack", "lift_fresh", "lift_fresh_copy",
    "set_", "resize_", "view_as", "expand_as", "narrow", "arange", "scalar_tensor",
    "_local_scalar_dense", "item", "randn", "rand", "randint", "normal_", "uniform_",
    "sym_size", "sym_stride", "sym_numel", "is_nonzero", "to", "type_as", "_unsafe_index",
    "index", "index_select", "gather", "masked_fill", "where", "_reshape_copy", "movedim",
    "unfold", "pad", "constant_pad_nd", "repeat", "record_stream", "is_same_size", "numel",
    "dim", "size", "stride", "lift", "_conj", "_neg_view", "resolve_conj", "resolve_neg",
})


def family_of(op: str) -> str:
    """The family of an op (``aten.addmm`` -> ``matmul``); an elementwise op is its own name."""
    name = _short(op)
    for fam, members in FAMILIES.items():
        if name in members or name.rstrip("_") in members:
            return fam
    return name.rstrip("_")


class OpRecorder(TorchDispatchMode):
    """Records the ATen op of every PyTorch call made under it (thread-local, as all modes)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "overloadpacket", func)
        self.ops.append(str(packet))
        return func(*args, **(kwargs or {}))


def _short(op: str) -> str:
    return op.split(".")[-1] if op.startswith("aten.") else op


def computing(ops: Iterable[str]) -> set[str]:
    return {o for o in ops if _short(o) not in NEUTRAL and _short(o).rstrip("_") not in NEUTRAL}


def main_ops(reference_ops: Iterable[str]) -> frozenset[str]:
    """Families (see :func:`family_of`) that carry the reference's computation.

    Its heavy families, less the library primitives when something else is left for kernels;
    for an elementwise-only reference, its elementwise ops.
    """
    fams = {family_of(o) for o in computing(reference_ops)}
    heavy = fams & HEAVY
    if not heavy:
        return frozenset(fams)
    rest = fams - (heavy & LIBRARY)
    if rest:
        return frozenset(rest & HEAVY) or frozenset(rest)
    return frozenset(heavy)


def forbidden_calls(answer_ops: Iterable[str], reference_ops: Iterable[str]) -> list[str]:
    """The answer's PyTorch calls that do the problem's work: ops of a main family, and heavy
    ops the reference does not justify (a library primitive the reference also calls)."""
    main = main_ops(reference_ops)
    ref_fams = {family_of(o) for o in computing(reference_ops)}
    allowed = (ref_fams & LIBRARY) - main
    bad = []
    for op in sorted(computing(answer_ops)):
        fam = family_of(op)
        if fam in main or (fam in HEAVY and fam not in allowed):
            bad.append(op)
    return bad


# ---- integrity of the process -------------------------------------------------------------
_WATCHED_MODULES = ("time", "torch", "torch.nn.functional", "torch.cuda", "torch.testing",
                    "triton.testing", "threading", "eggsearch.verify",
                    "eggsearch.problems.anticheat", "eggsearch.problems.verifier",
                    "eggsearch.problems.timing", "eggsearch.problems.worker")


def _watched_namespaces() -> dict[str, dict]:
    import torch

    spaces = {}
    for name in _WATCHED_MODULES:
        try:
            spaces[name] = vars(importlib.import_module(name))
        except ImportError:
            continue
    spaces["torch.Tensor"] = vars(torch.Tensor)
    spaces["torch._C.TensorBase"] = vars(torch._C.TensorBase)
    spaces["torch.cuda.Event"] = vars(torch.cuda.Event)
    return spaces


def _precision_flags() -> dict[str, object]:
    import torch

    return {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction":
                torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "default_dtype": str(torch.get_default_dtype())}


def live_threads() -> int:
    return max(threading.active_count(), _thread._count() + 1)


class Integrity:
    """What an answer must leave as it found it; :meth:`capture` before importing it."""

    def __init__(self):
        self.functions = {ns: {k: id(v) for k, v in d.items() if callable(v)}
                          for ns, d in _watched_namespaces().items()}
        self.flags = _precision_flags()
        self.threads = live_threads()

    @classmethod
    def capture(cls) -> Integrity:
        """Snapshot now; first let PyTorch make its own lazy patches (entering a dispatch mode
        imports ``torch._dynamo``, which wraps ``torch.manual_seed``)."""
        import torch

        with OpRecorder():
            torch.ones(2) + 1
        return cls()

    def violations(self) -> list[str]:
        """Patched functions, changed precision switches, background threads still running."""
        found = []
        now = _watched_namespaces()
        for ns, before in self.functions.items():
            after = now.get(ns, {})
            changed = [k for k, i in before.items() if k not in after or id(after[k]) != i]
            if changed:
                found.append(f"patches {ns}.{changed[0]}"
                             + (f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""))
        for k, v in _precision_flags().items():
            if self.flags[k] != v:
                found.append(f"changes PyTorch's precision setting {k} ({self.flags[k]} -> {v})")
        if live_threads() > self.threads:
            found.append(f"leaves {live_threads() - self.threads} background thread(s) running")
        return found


def poison_allocator(nbytes: Iterable[int], device: str) -> None:
    """Allocate, fill with NaN and free blocks of these sizes, so the next allocations of the
    same sizes (an answer's ``torch.empty``) start out as NaN rather than a freed result."""
    import torch

    blocks = []
    for n in nbytes:
        for size in (n, 2 * n):
            blocks.append(torch.full((max(1, -(-size // 4)),), float("nan"),
                                     dtype=torch.float32, device=device))
    del blocks
