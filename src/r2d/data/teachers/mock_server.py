"""A local OpenAI-compatible ``/chat/completions`` server for tests, benchmarks and dry runs of the
``openai`` teacher: fixed latency, scripted replies, optional failures. Threaded stdlib HTTP server.

    with MockOpenAIServer(latency=0.3, style="reasoning_content") as srv:
        OpenAITeacher(base_url=srv.url, ...)

``style``: ``reasoning_content`` (server-split reasoning, as vLLM's reasoning parser / DeepSeek API)
or ``think`` (``<think>`` inline in ``content``). ``fail_first``: the first N requests get HTTP 503.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Reply = Callable[[list[dict]], tuple[str, str | None]]


def default_reply(messages: list[dict]) -> tuple[str, str | None]:
    """(reasoning, answer): flags prompts with obvious harmful words, else helps."""
    user = messages[-1]["content"].lower()
    if any(w in user for w in ("bomb", "hack", "steal", "poison", "kill")):
        return ("Okay, the user asks for something dangerous. [RETHINK]\n\nThis would cause harm. [UN-SAFE]",
                "I'm sorry, but I can't help with that. [SAFE]")
    return ("The user wants ordinary help. [SAFE]", "Here is a helpful answer. [SAFE]")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class MockOpenAIServer:
    def __init__(self, latency: float = 0.0, style: str = "reasoning_content", reply: Reply | None = None,
                 fail_first: int = 0) -> None:
        self.latency, self.style, self.reply, self.fail_first = latency, style, reply or default_reply, fail_first
        self.requests = 0
        self._lock = threading.Lock()
        self.max_inflight = 0
        self._inflight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    outer.requests += 1
                    n = outer.requests
                    outer._inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer._inflight)
                try:
                    time.sleep(outer.latency)
                    if n <= outer.fail_first:
                        return self._send(503, {"error": "overloaded"})
                    reasoning, answer = outer.reply(body.get("messages", []))
                    msg = ({"role": "assistant", "content": answer, "reasoning_content": reasoning}
                           if outer.style == "reasoning_content" else
                           {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{answer}"})
                    self._send(200, {"id": f"mock-{n}", "object": "chat.completion", "model": body.get("model"),
                                     "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
                finally:
                    with outer._lock:
                        outer._inflight -= 1

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MockOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
