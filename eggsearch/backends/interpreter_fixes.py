"""Work-arounds for bugs in Triton's CPU interpreter (``TRITON_INTERPRET=1``). GPU runs never
load this module.

* ``tl.dot`` on bfloat16: the interpreter stores bf16 as uint16 and hands those raw bit patterns
  to ``np.matmul`` (seen in Triton 3.6.0 and 3.9.0: relative error ~1e10 on random inputs). We
  widen bf16 operands to float32 first, which is exact, as the GPU's tensor cores also multiply
  bf16 exactly and accumulate in fp32.
"""

from __future__ import annotations

_applied = False


def apply_interpreter_fixes() -> None:
    global _applied
    if _applied:
        return
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter.InterpreterBuilder.create_dot

    def _widen(h):
        if h.dtype.scalar != tl.bfloat16:
            return h
        data = interpreter._convert_float(h.data, tl.bfloat16, tl.float32, None)
        return interpreter.TensorHandle(data.view(np.float32), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return original(self, _widen(a), _widen(b), d, input_precision, max_num_imprecise_acc)

    interpreter.InterpreterBuilder.create_dot = create_dot
    _applied = True
