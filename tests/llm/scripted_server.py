"""An OpenAI-compatible chat-completions server on 127.0.0.1 that serves scripted replies.

Replies are queued per agent (the client names its agent in the ``X-Eggsearch-Agent`` header).
A step is a reply text, or an HTTP error status, optionally after a delay (bounded, so that no
test can hang on it). Every request is recorded for the tests to inspect. The server binds to
127.0.0.1 on a free port and runs in daemon threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_DELAY_S = 10.0


@dataclass(frozen=True)
class Step:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)
    error: str = "scripted error"
    prompt_tokens: int = 120
    completion_tokens: int = 60


class ScriptedServer:
    """Args:
        script: agent -> the steps it gets, in order.
        fallback: agent -> the step it gets once its script is used up (else HTTP 500).
    """

    def __init__(self, script: dict[str, list[Step]] | None = None,
                 fallback: dict[str, Step] | None = None):
        self.queues = {k: deque(v) for k, v in (script or {}).items()}
        self.fallback = dict(fallback or {})
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def add(self, agent: str, *steps: Step) -> None:
        with self.lock:
            self.queues.setdefault(agent, deque()).extend(steps)

    def calls(self, agent: str | None = None) -> int:
        return sum(1 for r in self.requests if agent is None or r["agent"] == agent)

    def _next(self, agent: str) -> Step:
        with self.lock:
            queue = self.queues.get(agent)
            if queue:
                return queue.popleft()
        return self.fallback.get(agent, Step(status=500, error=f"script for {agent} used up"))

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                agent = self.headers.get("X-Eggsearch-Agent", "")
                with server.lock:
                    server.requests.append({"agent": agent, "path": self.path, "body": body,
                                            "authorization": self.headers.get("Authorization")})
                step = server._next(agent)
                time.sleep(min(step.delay_s, MAX_DELAY_S))
                if step.status == 200:
                    payload = {
                        "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion",
                        "created": 0, "model": body.get("model", "scripted"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": step.text}}],
                        "usage": {"prompt_tokens": step.prompt_tokens,
                                  "completion_tokens": step.completion_tokens,
                                  "total_tokens": step.prompt_tokens + step.completion_tokens}}
                else:
                    payload = {"error": {"message": step.error, "type": "scripted"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(step.status)
                    for k, v in step.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler
