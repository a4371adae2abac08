"""The generated convolution against cuDNN across layer shapes and dtypes.

Problems 21-23 have one convolution shape. This script writes, for each shape below (ResNet-50's
kinds of layers at batch 32, plus the problem set's), a problem file ``Conv2d(bias=True) +
ReLU``, generates its answer offline (the default configuration: no tuning), checks it against
a float64 convolution, and times it (``eggsearch.timing.bench_cuda``: L2 flushed, kernels back
to back) against PyTorch eager (cuDNN's convolution, then the bias and ReLU kernels) and
against cuDNN's convolution alone. fp32 runs without TF32 on both sides.

    python experiments/conv_shapes.py --out runs/conv-shapes.json [--dtypes fp32 fp16]
    python experiments/conv_shapes.py --table runs/conv-shapes.json   # print a run's table again

Where the generator keeps the convolution in cuDNN (``fusion.conv_pays``), the answer is
cuDNN's convolution and one fused bias + ReLU kernel; the "kernels" column says which.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402

from eggsearch.problems.generate import build, hardware_env  # noqa: E402
from eggsearch.problems.loader import import_file, load_problem  # noqa: E402
from eggsearch.timing import bench_cuda  # noqa: E402

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

# (name, batch, in, out, size, kernel, stride, padding)
SHAPES = [
    ("problems 21-23", 64, 16, 64, 128, 3, 1, 0),
    ("resnet stem 7x7/2", 32, 3, 64, 224, 7, 2, 3),
    ("3x3 64ch 56^2", 32, 64, 64, 56, 3, 1, 1),
    ("1x1 64->256 56^2", 32, 64, 256, 56, 1, 1, 0),
    ("3x3 128ch 28^2", 32, 128, 128, 28, 3, 1, 1),
    ("3x3 256ch 14^2", 32, 256, 256, 14, 3, 1, 1),
    ("3x3 512ch 7^2", 32, 512, 512, 7, 3, 1, 1),
]

PROBLEM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d({cin}, {cout}, {k}, stride={s}, padding={p}).to({dtype})

    def forward(self, x):
        return torch.relu(self.conv(x))


def get_inputs():
    return [torch.randn({n}, {cin}, {hw}, {hw}, dtype={dtype})]


def get_init_inputs():
    return []
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, help="print the table of an earlier run's JSON")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "fp16"])
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(args.table.read_text()))
        return
    if args.out is None:
        parser.error("--out is required")
    env = hardware_env("cuda")
    dtypes = {"fp32": "torch.float32", "fp16": "torch.float16"}
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for dt in args.dtypes:
        for name, n, cin, cout, hw, k, s, p in SHAPES:
            path = tmp / f"conv_{len(rows)}.py"
            path.write_text(PROBLEM.format(cin=cin, cout=cout, k=k, s=s, p=p, n=n, hw=hw,
                                           dtype=dtypes[dt]))
            problem = load_problem(path, False)
            gen = build(problem, env)
            answer = tmp / f"answer_{len(rows)}.py"
            answer.write_text(gen.source)
            mod = import_file(answer, f"answer_{len(rows)}")
            torch.manual_seed(0)
            ref = problem.build(0, "cuda")
            new = problem.build(0, "cuda", mod.ModelNew)
            x = problem.inputs(0, "cuda")[0]
            conv = ref.conv
            with torch.no_grad():
                exact = torch.relu(torch.nn.functional.conv2d(
                    x.double(), conv.weight.double(), conv.bias.double(), s, p))
                got = new(x)
                rel = float((got.double() - exact).norm() / exact.norm())
                t_new = bench_cuda(partial(new, x))[0]
                t_eager = bench_cuda(partial(ref, x))[0]
                t_cudnn = bench_cuda(partial(torch.nn.functional.conv2d, x, conv.weight, None,
                                             s, p))[0]
            oh = (hw + 2 * p - k) // s + 1
            flops = 2 * n * oh * oh * cout * cin * k * k
            cfg = {key.split("_", 1)[1]: v for key, v in gen.config.items()}
            row = {"shape": name, "dtype": dt, "depth": cin * k * k, "gflop": flops / 1e9,
                   "answer_ms": t_new, "eager_ms": t_eager, "cudnn_conv_ms": t_cudnn,
                   "vs_eager": t_eager / t_new, "vs_cudnn_conv": t_cudnn / t_new,
                   "answer_tflops": flops / (t_new * 1e-3) / 1e12, "rel_err": rel,
                   "config": cfg, "groups": list(gen.groups)}
            rows.append(row)
            print(f"{dt} {name:20} answer {t_new:8.4f} ms  eager {t_eager:8.4f}  cuDNN conv "
                  f"{t_cudnn:8.4f}  rel {rel:.1e}", flush=True)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "triton": triton.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print_table(report)


def print_table(report: dict) -> None:
    rows = report["rows"]
    print(f"\n{report['device']}; torch {report['torch']}, triton {report['triton']}")
    print(f"{'dtype':5} {'shape':20} {'depth':>5} {'GFLOP':>6} {'answer ms':>9} {'eager ms':>9} "
          f"{'cuDNN conv':>10} {'vs eager':>8} {'vs conv':>8} {'TFLOP/s':>8} {'rel err':>8}  "
          "kernels")
    for r in rows:
        c = r["config"]
        if "BLOCK_M" in c:
            cfg = (f"Triton conv {c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']} w{c['num_warps']} "
                   f"s{c['num_stages']}" + (f" split={c['W_SPLIT']}" if "W_SPLIT" in c else ""))
        else:
            cfg = "cuDNN conv + fused bias/ReLU"
        print(f"{r['dtype']:5} {r['shape']:20} {r['depth']:5} {r['gflop']:6.1f} "
              f"{r['answer_ms']:9.4f} {r['eager_ms']:9.4f} {r['cudnn_conv_ms']:10.4f} "
              f"{r['vs_eager']:7.2f}x {r['vs_cudnn_conv']:7.2f}x {r['answer_tflops']:8.1f} "
              f"{r['rel_err']:8.1e}  {cfg}")


if __name__ == "__main__":
    main()
