"""The on-disk response cache: a re-run with the same model and prompts is reproducible and free.

One JSON file per reply, ``<dir>/<key[:2]>/<key>.json``, where the key is a SHA-256 of the model
name, the rendered messages and the sampling settings. Files are written atomically, so a killed
run leaves no half-written entry. Only successful replies are stored (never errors), and nothing
about the endpoint's credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from eggsearch.rundir import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def cache_key(model: str, messages: list[dict], sampling: dict) -> str:
    body = json.dumps({"model": model, "messages": messages, "sampling": sampling},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class ResponseCache:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedReply | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
            return CachedReply(str(data["text"]), int(data["prompt_tokens"]),
                               int(data["completion_tokens"]), str(data["finish_reason"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None

    def put(self, key: str, reply: CachedReply, model: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"model": model, "text": reply.text,
                                 "prompt_tokens": reply.prompt_tokens,
                                 "completion_tokens": reply.completion_tokens,
                                 "finish_reason": reply.finish_reason})
