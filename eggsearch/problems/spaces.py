"""Search spaces of the generated kernels: tunables, expert seeds and constraints per group.

Sizes in the constraints and seeds are the traced ones (the kernels themselves work at any
size). Seeds come first in the study and the first one that meets a group's constraints is the
answer's default configuration; the last seeds use small tiles, so some seed fits even the
interpreter's small shapes.
"""

from __future__ import annotations


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def pointwise_space() -> tuple[dict, list[dict], list[dict]]:
    tunables = {"BLOCK": {"pow2": [128, 8192]}, "num_warps": {"pow2": [1, 16]}}
    seeds = [{"BLOCK": 1024, "num_warps": 4}, {"BLOCK": 2048, "num_warps": 8}]
    constraints = [{"name": "threads_fit_block", "expr": "BLOCK >= num_warps * 32"},
                   {"name": "at_most_16_per_thread", "expr": "BLOCK <= num_warps * 32 * 16"}]
    return tunables, seeds, constraints


def gemm_space(elem_bytes: int, fp32: bool, M: int, N: int, K: int, b_k_major: bool = False,
               b_copy: bool = False) -> tuple[dict, list[dict], list[dict]]:
    """Tunables, expert seeds and constraints (sizes are the traced ones: the seeds and the
    oversized-tile rules depend on them; the kernel itself works at any size). ``b_k_major``:
    B's elements are contiguous along K (a transposed weight, as ``nn.Linear`` has).
    ``b_copy``: the launcher can copy an N-contiguous B to a K-contiguous one first (tunable
    ``B_K_MAJOR``; fp32, whose tf32 MMAs take B along K)."""
    tunables = {"BLOCK_M": {"pow2": [16, 256]}, "BLOCK_N": {"pow2": [16, 256]},
                "BLOCK_K": {"pow2": [16, 128]}, "GROUP_M": {"choices": [1, 4, 8]},
                "num_warps": {"pow2": [2, 8]}, "num_stages": {"int": [1, 5]},
                "PRECISION": {"choices": ["tf32x3", "ieee"] if fp32 else ["ieee"]}}
    prec = "tf32x3" if fp32 else "ieee"
    seeds = [{"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 8,
              "num_stages": 3, "PRECISION": prec},
             {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 4, "PRECISION": prec},
             {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 3, "PRECISION": prec},
             {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 2, "PRECISION": prec},
             {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1, "num_warps": 2,
              "num_stages": 1, "PRECISION": prec}]
    if fp32:
        # tf32x3 runs three dots per step, so narrower tiles than fp16's win. On an H200
        # (experiments/results/2026-11-21-h200-answer-probe-gemm.txt), with B contiguous along
        # N (matmul, bmm) 128x32x64 / 4 warps / 3 stages was fastest (2.58 ms at 4096^3, where
        # this list's first entry took 4.00); with B contiguous along K (the transposed weight
        # of a linear layer) 128x64x32 / 4 warps / 4 stages was (0.90 ms at 2048x4096x4096,
        # 128x32x64 1.05).
        narrow = {"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 4,
                  "num_stages": 3, "PRECISION": prec}
        wide = seeds.pop(1)  # 128x64x32 / 4 warps / 4 stages
        seeds[:0] = [wide, narrow] if b_k_major else [narrow, wide]
    if b_copy:
        # The copy reads and writes B once (K * N per batch) for M * K * N of work: it paid at
        # M = 4096 on the H200 (4096^3: 1.91 ms copied with the K-contiguous tile, 2.51 as it
        # is) and not at M = 512 (bmm 128 x 512x1024x512: 1.37 ms against 1.29), so the first
        # seed copies where M >= 2048.
        tunables["B_K_MAJOR"] = {"choices": [True, False]}
        copied = {**wide, "B_K_MAJOR": True}
        seeds = [{**s, "B_K_MAJOR": False} for s in seeds]
        seeds.insert(0 if M >= 2048 else 1, copied)
    b = elem_bytes
    constraints = [
        {"name": "smem", "expr": f"num_stages * (BLOCK_M + BLOCK_N) * BLOCK_K * {b} "
                                 "<= smem_per_block"},
        {"name": "accumulator_registers",
         "expr": "BLOCK_M * BLOCK_N <= num_warps * 32 * (64 if PRECISION == 'tf32x3' else 128)"},
        {"name": "tile_not_wider_than_m", "expr": f"BLOCK_M <= max(16, next_pow2({M}))"},
        {"name": "tile_not_wider_than_n", "expr": f"BLOCK_N <= max(16, next_pow2({N}))"},
        {"name": "tile_not_deeper_than_k", "expr": f"BLOCK_K <= max(16, next_pow2({K}))"},
        {"name": "warps_have_work", "expr": "BLOCK_M * BLOCK_N >= num_warps * 32 * 4"},
    ]
    return tunables, seeds, constraints


def conv_space(elem_bytes: int, fp32: bool, M: int, N: int, C: int, depth: int
               ) -> tuple[dict, list[dict], list[dict]]:
    """A convolution's implicit GEMM (:mod:`eggsearch.problems.convkernel`): the GEMM's tunables
    and constraints with ``BLOCK_K`` over the ``C`` input channels of one tap (it is never
    deeper than ``C`` rounded up to 16), ``M`` output pixels and ``N`` output channels. Its
    seeds favour tall tiles: ``N`` is a layer's channel count, often 64 or less, and ``M`` is
    every output pixel of the batch. ``A_M_FAST`` picks the orientation A's tile is loaded in
    (pixels or channels along the fast axis); fp32's ``W_SPLIT`` splits the weight into TF32
    parts once per call instead of both tiles on every step.

    Measured on the H200 for problems 21-23's convolution
    (``experiments/results/2026-11-21-h200-session5-conv-variants.txt``): 128x64x16 / 4 warps
    / 2 stages with the weight split and channels along the fast axis took 0.318 ms, against
    0.703 with Triton's own tf32x3 and 1.009 with pixels along the fast axis (cuDNN: 0.560).
    Its error grows with the GEMM's depth ``depth = C * KH * KW`` faster than tf32x3's (it
    accumulates the three products of each step into the result: a normwise 9.9e-7 at depth
    144 against tf32x3's 1.1e-7; in a GEMM at depth 4096 it missed 1e-5 against eager,
    ``experiments/results/2026-11-21-h200-session5-probe-gemm-wsplit.json``), so the seeds
    split the weight only up to depth 1024 (measured within 1e-5 there: a bmm of depth 1024)."""
    tunables, _, constraints = gemm_space(elem_bytes, fp32, M, N, C)
    tunables["A_M_FAST"] = {"choices": [False, True]}
    if fp32:
        tunables["W_SPLIT"] = {"choices": [True, False]}
        constraints.append({"name": "weight_split_is_tf32x3",
                            "expr": "not W_SPLIT or PRECISION == 'tf32x3'"})
    prec = "tf32x3" if fp32 else "ieee"
    bk = max(16, min(32, _next_pow2(C)))
    bn = max(16, min(64, _next_pow2(N)))
    seeds = [{"BLOCK_M": 128, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 2, "PRECISION": prec},
             {"BLOCK_M": 128, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 3, "PRECISION": prec},
             {"BLOCK_M": 64, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 2, "PRECISION": prec},
             {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 8, "num_warps": 4,
              "num_stages": 2, "PRECISION": prec},
             {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1, "num_warps": 2,
              "num_stages": 1, "PRECISION": prec}]
    split = depth <= 1024
    seeds = [{**s, "A_M_FAST": False, **({"W_SPLIT": split} if fp32 else {})} for s in seeds]
    if fp32:  # the other fp32 form
        seeds.insert(2, {**seeds[0], "W_SPLIT": not split})
    return tunables, seeds, constraints


def row_space(R: int, C: int, I: int, reduce_only: bool = False
              ) -> tuple[dict, list[dict], list[dict]]:
    """``reduce_only``: the group stores nothing row-sized (a sum, an argmax, a loss), so a
    looped kernel reads the row once like a one-pass one, and keeping more programs resident
    wins over holding the whole row in registers (4096 columns by 16 warps first, measured on
    the H200 for argmax and the convolution's average pool:
    ``experiments/results/2026-11-21-h200-session4.md``)."""
    tunables = {"BLOCK_R": {"pow2": [1, 128]}, "BLOCK_C": {"pow2": [16, 16384]},
                "num_warps": {"pow2": [1, 16]}}
    cp = _next_pow2(C)
    seeds = []
    rp = _next_pow2(R)
    if I == 1 and (reduce_only and cp > 4096 or cp > 16384):
        # Looped first, in blocks of 4096: by 16 warps where nothing row-sized is stored, by 8
        # where a row too long to hold is walked several times anyway (group norm's
        # 127008-column rows on the H200: 1.05 ms against 1.39 at 16384 / 16)
        seeds = [{"BLOCK_R": 1, "BLOCK_C": 4096, "num_warps": 16 if reduce_only else 8},
                 {"BLOCK_R": 1, "BLOCK_C": min(cp, 16384), "num_warps": 16},
                 {"BLOCK_R": 2, "BLOCK_C": 1024, "num_warps": 4}]
    elif I == 1:
        for bc in (min(cp, 16384), min(cp, 4096), min(cp, 1024)):
            bc = max(16, bc)
            br = max(1, min(16, 2048 // bc, rp))
            seeds.append({"BLOCK_R": br, "BLOCK_C": bc,
                          "num_warps": max(1, min(16, br * bc // 512))})
    else:
        # rows along I (a reduction over a middle dimension): 64 rows x 32 columns where the
        # reduced dimension is long (sum and min over 1024 of [64, 1024, 1024] on the H200:
        # 0.074-0.078 ms against 0.080-0.086 at 64 x 64), 64 x 64 where it is short
        # (rmsnorm over 64 channels)
        tiles = ((64, 32), (64, 64), (32, 128), (16, 32)) if cp > 64 else (
            (64, 64), (32, 128), (16, 32))
        for br, bc in tiles:
            br, bc = max(1, min(br, rp)), max(16, min(bc, cp))
            seeds.append({"BLOCK_R": br, "BLOCK_C": bc,
                          "num_warps": max(1, min(8, br * bc // 256))})
    constraints = [
        {"name": "tile_in_registers", "expr": "BLOCK_R * BLOCK_C <= num_warps * 32 * 64"},
        {"name": "threads_have_work", "expr": "BLOCK_R * BLOCK_C >= num_warps * 32"},
        {"name": "no_wider_than_the_row", "expr": f"BLOCK_C <= max(16, next_pow2({C}))"},
        {"name": "no_more_rows_than_exist", "expr": f"BLOCK_R <= max(1, next_pow2({R}))"},
    ]
    return tunables, seeds, constraints
