"""What the convolution of problems 21-23 costs in PyTorch, and what tensor cores would allow.

Problems 21-23 (``tests/problems/set/2[123]_conv2d_*.py``) keep their 3x3 convolution in PyTorch
(cuDNN) and fuse everything after it. In fp32 without TF32 (the problem set's contract) cuDNN runs
it on CUDA cores. This script times that convolution (batch 64, 16 -> 64 channels, 128x128, 3x3,
no bias: how the answers call it) in fp32, with TF32 allowed (for the tensor-core rate only: a
TF32 result fails the set's 1e-4), and as the GEMM it is (im2col through ``unfold``, then one
matmul, fp32 and TF32), each as TFLOP/s of the convolution's 2 * M * N * K.

    python experiments/conv_bound.py --out runs/conv-bound.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from eggsearch.timing import bench_cuda  # noqa: E402

BATCH, IC, OC, HW, KS = 64, 16, 64, 128, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    x = torch.randn(BATCH, IC, HW, HW, device="cuda")
    w = torch.randn(OC, IC, KS, KS, device="cuda")
    oh = HW - KS + 1
    m, n, k = BATCH * oh * oh, OC, IC * KS * KS
    flops = 2 * m * n * k
    cols = torch.nn.functional.unfold(x, KS).transpose(1, 2).reshape(m, k).contiguous()
    wt = w.reshape(OC, k).t().contiguous()
    rows = {}
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        tag = "tf32" if tf32 else "fp32"
        conv = bench_cuda(lambda: torch.ops.aten.convolution.default(
            x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1))[0]
        gemm = bench_cuda(lambda: cols @ wt)[0]
        rows[f"cuDNN convolution, {tag}"] = conv
        rows[f"the same as one GEMM (im2col done beforehand), {tag}"] = gemm
    tflops = {name: flops / (ms * 1e-3) / 1e12 for name, ms in rows.items()}
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "M": m, "N": n, "K": k, "gflop": flops / 1e9, "ms": rows, "tflops": tflops}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{report['device']}; torch {report['torch']}; M={m} N={n} K={k}, "
          f"{flops / 1e9:.1f} GFLOP")
    print(f"{'what':56} {'ms':>8} {'TFLOP/s':>8}")
    for name, ms in rows.items():
        print(f"{name:56} {ms:8.4f} {report['tflops'][name]:8.1f}")


if __name__ == "__main__":
    main()
