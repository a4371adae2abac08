"""The static screen every generated module passes before it is imported anywhere.

Generated code is parsed with :mod:`ast` (never imported or executed here) and rejected, with
the reasons, when it:

* imports anything but ``torch``, ``triton``, ``triton.language``, ``math`` (and ``__future__``);
* names a builtin that reaches outside the sandbox (``open``, ``eval``, ``exec``, ``compile``,
  ``__import__``, ``getattr``, ``globals``, ...) or a module it may not import (``os``, ``sys``,
  ``subprocess``, ``socket``, ...);
* touches a private or dunder attribute (``x.__class__``, ``torch._C``), a dunder name, or holds a
  string with ``__`` in it (format-string attribute walks);
* uses a ``torch`` attribute outside a short list of tensor factories and dtypes (so no
  ``torch.load``, ``torch.hub``, ``torch.utils.cpp_extension``, ``torch.ops``, and no computing
  the answer with PyTorch: the work must be done by Triton kernels);
* runs code at import time (only imports, definitions, constant assignments and docstrings at
  the top level);
* has no ``@triton.jit`` kernel, or no launcher ``launcher(*inputs, *, out, ...)``.

The screen is one layer; the generated module then runs only in the isolated worker process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

ALLOWED_IMPORTS = frozenset({"torch", "triton", "triton.language", "math", "__future__"})
BANNED_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "exit", "quit", "memoryview", "os", "sys",
    "subprocess", "socket", "importlib", "builtins", "shutil", "pathlib", "ctypes", "pickle",
    "marshal", "signal", "threading", "multiprocessing", "urllib", "requests", "inspect", "gc",
    "tempfile", "runpy", "pkgutil",
})
# Attribute names that lead out of the sandbox wherever they appear (``tl.core.builtins``,
# ``triton.runtime.cache.os``, ``pkgutil.resolve_name``, ...).
BANNED_ATTRIBUTES = BANNED_NAMES | frozenset({
    "system", "popen", "spawnl", "spawnv", "execv", "execve", "fork", "import_module",
    "resolve_name", "find_spec", "spec_from_file_location", "load_library", "cpp_extension",
})
TRITON_ATTRIBUTES = frozenset({"jit", "cdiv", "next_power_of_2", "language", "Config",
                               "autotune", "heuristics", "constexpr"})
TORCH_CUDA_ATTRIBUTES = frozenset({"get_device_properties", "current_device", "device_count",
                                   "is_available", "get_device_capability"})
# What a launcher may use of torch: allocate buffers, name dtypes, read device properties.
TORCH_ATTRIBUTES = frozenset({
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "arange", "float16", "float32", "float64", "bfloat16", "half", "float",
    "int8", "int16", "int32", "int64", "uint8", "bool", "dtype", "device", "Size", "Tensor",
    "finfo", "iinfo", "cuda", "get_device_properties", "device_count", "current_device",
    "is_floating_point", "get_default_dtype",
})
# Methods that compute the answer with PyTorch instead of a kernel.
TORCH_COMPUTE = frozenset({
    "softmax", "log_softmax", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "linear",
    "layer_norm", "rms_norm", "group_norm", "batch_norm", "scaled_dot_product_attention",
    "conv1d", "conv2d", "conv3d", "exp", "sum", "mean", "amax", "max", "logsumexp", "var",
    "std", "norm", "rsqrt", "sqrt", "mul", "div", "sub", "add", "copy_", "mul_", "div_",
    "add_", "sub_", "pow", "tensordot", "cumsum", "functional", "nn", "where",
})


def screen(source: str, launcher: str = "launch") -> list[str]:
    """Every reason to reject ``source``; an empty list means it passed."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"does not parse: {exc.msg} (line {exc.lineno})"]
    reasons = _top_level(tree, launcher)
    jit_bodies = {id(n) for f in _jit_functions(tree) for n in ast.walk(f)}
    modules = _module_aliases(tree)
    bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            reasons += _attribute_reasons(node, modules, in_kernel=id(node) in jit_bodies)
        elif isinstance(node, ast.Name) and node.id in modules and id(node) not in bases:
            # `t = torch; t.load(...)` would slip past the attribute checks.
            reasons.append(f"line {node.lineno}: the module `{node.id}` may only be used as "
                           f"`{node.id}.<name>`")
        else:
            reasons += _node_reasons(node)
    return list(dict.fromkeys(reasons))  # unique, in order


def launcher_keywords(source: str, launcher: str = "launch") -> tuple[set[str], bool]:
    """The launcher's keyword parameters and whether it takes ``**kwargs``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == launcher:
            a = node.args
            names = {x.arg for x in (*a.args, *a.kwonlyargs)}
            return names, a.kwarg is not None
    return set(), False


def _top_level(tree: ast.Module, launcher: str) -> list[str]:
    reasons = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign,
                             ast.AnnAssign)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str):
            continue
        reasons.append(f"line {node.lineno}: only imports, functions and constants may stand "
                       f"at the top level (found {type(node).__name__})")
    if not _jit_functions(tree):
        reasons.append("no @triton.jit kernel: the work must be done by a Triton kernel")
    launchers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == launcher]
    if not launchers:
        reasons.append(f"no launcher: define `def {launcher}(*inputs, out, **tunables)` at the "
                       "top level")
    elif not any(a.arg == "out" for a in (*launchers[0].args.kwonlyargs,
                                          *launchers[0].args.args)):
        reasons.append(f"the launcher `{launcher}` takes no `out` keyword argument")
    return reasons


def _jit_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    def is_jit(d: ast.expr) -> bool:
        d = d.func if isinstance(d, ast.Call) else d
        return (isinstance(d, ast.Attribute) and d.attr == "jit") or \
            (isinstance(d, ast.Name) and d.id == "jit")

    return [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and any(is_jit(d) for d in n.decorator_list)]


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module it is bound to (``tl`` -> ``triton.language``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                    a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "triton"):
            for a in node.names:
                if a.name in ("cuda", "language"):
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _node_reasons(node: ast.AST) -> list[str]:
    line = f"line {getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Import):
        return [f"{line}: import {a.name} is not allowed (only {_allowed()})"
                for a in node.names if a.name not in ALLOWED_IMPORTS]
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level or module not in ALLOWED_IMPORTS:
            return [f"{line}: from {'.' * node.level}{module} import ... is not allowed "
                    f"(only {_allowed()})"]
        return [f"{line}: importing {a.name} from {module} is not allowed"
                for a in node.names if a.name == "*" or a.name.startswith("_")
                or a.name in BANNED_ATTRIBUTES
                or (module == "torch" and a.name not in TORCH_ATTRIBUTES)
                or (module == "triton" and a.name not in TRITON_ATTRIBUTES)]
    if isinstance(node, ast.Name):
        if node.id in BANNED_NAMES:
            return [f"{line}: `{node.id}` is not allowed in generated code"]
        if node.id.startswith("__"):
            return [f"{line}: dunder name `{node.id}` is not allowed"]
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
        return [f"{line}: strings containing '__' are not allowed"]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        reasons = [f"{line}: class definitions are not allowed"] \
            if isinstance(node, ast.ClassDef) else []
        if node.name.startswith("__"):
            reasons.append(f"{line}: dunder definition `{node.name}` is not allowed")
        return reasons
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return [f"{line}: global/nonlocal statements are not allowed"]
    return []


def _attribute_reasons(node: ast.Attribute, modules: dict[str, str],
                       in_kernel: bool) -> list[str]:
    line = f"line {node.lineno}"
    if node.attr.startswith("_"):
        return [f"{line}: private or dunder attribute `.{node.attr}` is not allowed"]
    if node.attr in BANNED_ATTRIBUTES:
        return [f"{line}: attribute `.{node.attr}` is not allowed in generated code"]
    chain, root = [node.attr], node.value
    while isinstance(root, ast.Attribute):
        chain.insert(0, root.attr)
        root = root.value
    module = modules.get(root.id) if isinstance(root, ast.Name) else None
    if module is not None:
        dotted = ".".join([module, *chain])
        if not _allowed_chain(module.split(".") + chain):
            return [f"{line}: {dotted} is not allowed in a generated kernel module (of torch "
                    "only tensor factories, dtypes and device properties; of triton only jit, "
                    "cdiv, language, ...; the work must be done in Triton)"]
        return []
    if not in_kernel and node.attr in TORCH_COMPUTE:
        return [f"{line}: `.{node.attr}` computes with PyTorch outside a kernel; do the work "
                "in the Triton kernel"]
    return []


def _allowed_chain(parts: list[str]) -> bool:
    """Whether a dotted name rooted at an imported module may be used."""
    if parts[0] == "torch":
        if len(parts) > 1 and parts[1] not in TORCH_ATTRIBUTES:
            return False
        return not (len(parts) > 2 and parts[1] == "cuda"
                    and parts[2] not in TORCH_CUDA_ATTRIBUTES)
    if parts[0] == "triton" and len(parts) > 1:
        return parts[1] in TRITON_ATTRIBUTES  # triton.language.* and math.*: any public name
    return True


def _allowed() -> str:
    return ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))


def summarize(reasons: Iterable[str], limit: int = 6) -> str:
    """One line of reasons for a prompt or a record."""
    reasons = list(reasons)
    more = f" (+{len(reasons) - limit} more)" if len(reasons) > limit else ""
    return "; ".join(reasons[:limit]) + more
