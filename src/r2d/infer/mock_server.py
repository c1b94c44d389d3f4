"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (stdlib only).

    with MockOpenAIServer(delay_s=0.2, split_reasoning=True) as srv:
        backend = OpenAIBackend(base_url=srv.url, model="m")

Serves ``/v1/chat/completions`` and ``/v1/completions``. ``fail`` is a list of HTTP statuses
returned, in order, by the first requests (e.g. ``[429, 500]``); ``hang_s`` makes every request
sleep that long before answering (timeout tests). It records request bodies and the maximum
number of requests in flight at once (to check bounded concurrency).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog; the default (5) drops bursts of 32 connects


class MockOpenAIServer:
    def __init__(self, delay_s: float = 0.0, split_reasoning: bool = False, fail: list[int] | None = None,
                 hang_s: float = 0.0, reply: str | None = None) -> None:
        self.delay_s, self.split_reasoning, self.hang_s, self.reply = delay_s, split_reasoning, hang_s, reply
        self.fail = list(fail or [])
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> "MockOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, body: dict) -> tuple[str, str | None]:
        """(content, reasoning_content) for a request body."""
        if "prompt" in body:
            return f"echo: {body['prompt'][-40:]}", None
        user = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
        answer = self.reply or f"Echo: {user} [SAFE]"
        reasoning = "The request looks benign. [SAFE]"
        if self.split_reasoning:
            return answer, reasoning
        return f"<think>\n{reasoning}\n</think>\n\n{answer}", None

    def _handler(self):
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0.05")
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with srv._lock:
                    srv.requests.append(body)
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                    status = srv.fail.pop(0) if srv.fail else 200
                try:
                    time.sleep(srv.hang_s or srv.delay_s)
                    if status != 200:
                        return self._send(status, {"error": {"message": f"scripted {status}"}})
                    content, reasoning = srv.answer(body)
                    usage = {"prompt_tokens": len(json.dumps(body).split()), "completion_tokens": len(content.split())}
                    if self.path.endswith("/chat/completions"):
                        msg = {"role": "assistant", "content": content}
                        if reasoning:
                            msg["reasoning_content"] = reasoning
                        choice = {"index": 0, "message": msg, "finish_reason": "stop"}
                    elif self.path.endswith("/completions"):
                        choice = {"index": 0, "text": content, "finish_reason": "stop"}
                    else:
                        return self._send(404, {"error": {"message": f"no route {self.path}"}})
                    self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                     "choices": [choice], "usage": usage})
                finally:
                    with srv._lock:
                        srv.in_flight -= 1

        return Handler
