"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests, benchmarks and dry runs of the
``openai`` backend and teacher (stdlib only, threaded).

    with MockOpenAIServer(delay_s=0.2, split_reasoning=True) as srv:
        backend = OpenAIBackend(base_url=srv.url, model="m")

Serves ``/v1/chat/completions`` and ``/v1/completions`` (the latter echoes the prompt).

- ``reply``: a callable ``messages -> (reasoning, answer)`` (e.g. ``teacher_reply``), a fixed answer
  string, or ``None`` for ``echo_reply`` (echoes the last user turn).
- ``split_reasoning``: reasoning in ``reasoning_content`` (vLLM's reasoning parser, DeepSeek API)
  instead of ``<think>`` inline in ``content``.
- ``delay_s``: fixed latency per request; ``hang_s``: sleep that long instead (timeout tests).
- ``fail``: HTTP statuses returned, in order, by the first requests (e.g. ``[429, 500]``);
  ``fail_first=N`` adds N scripted 503s.
- Records request bodies (``requests``) and the most requests in flight at once (``max_in_flight``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Reply = Callable[[list[dict]], tuple[str, str]]  # messages -> (reasoning, answer)


def echo_reply(messages: list[dict]) -> tuple[str, str]:
    """(reasoning, answer) echoing the last user turn."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    return "The request looks benign. [SAFE]", f"Echo: {user} [SAFE]"


def teacher_reply(messages: list[dict]) -> tuple[str, str]:
    """(reasoning, answer) like a safety-aware teacher: flags prompts with obvious harmful words, else helps."""
    user = messages[-1]["content"].lower() if messages else ""
    if any(w in user for w in ("bomb", "hack", "steal", "poison", "kill")):
        return ("Okay, the user asks for something dangerous. [RETHINK]\n\nThis would cause harm. [UN-SAFE]",
                "I'm sorry, but I can't help with that. [SAFE]")
    return "The user wants ordinary help. [SAFE]", "Here is a helpful answer. [SAFE]"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog; the default (5) drops bursts of concurrent connects


class MockOpenAIServer:
    def __init__(self, delay_s: float = 0.0, split_reasoning: bool = False, reply: Reply | str | None = None,
                 fail: list[int] | None = None, fail_first: int = 0, hang_s: float = 0.0) -> None:
        self.delay_s, self.split_reasoning, self.hang_s = delay_s, split_reasoning, hang_s
        if isinstance(reply, str):
            fixed = reply
            self.reply: Reply = lambda messages: (echo_reply(messages)[0], fixed)
        else:
            self.reply = reply or echo_reply
        self.fail = list(fail or []) + [503] * fail_first
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "MockOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> tuple[str, str | None]:
        """(content, reasoning_content) for a request body."""
        if "prompt" in body:
            return f"echo: {body['prompt'][-40:]}", None
        reasoning, answer = self.reply(body.get("messages", []))
        if self.split_reasoning:
            return answer, reasoning
        return f"<think>\n{reasoning}\n</think>\n\n{answer}", None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
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

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with srv._lock:
                    srv.requests.append(body)
                    n = len(srv.requests)
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                    status = srv.fail.pop(0) if srv.fail else 200
                try:
                    time.sleep(srv.hang_s or srv.delay_s)
                    if status != 200:
                        return self._send(status, {"error": {"message": f"scripted {status}"}})
                    if self.path.endswith("/chat/completions"):
                        content, reasoning = srv.answer(body)
                        msg = {"role": "assistant", "content": content}
                        if reasoning:
                            msg["reasoning_content"] = reasoning
                        choice = {"index": 0, "message": msg, "finish_reason": "stop"}
                    elif self.path.endswith("/completions"):
                        content, _ = srv.answer(body)
                        choice = {"index": 0, "text": content, "finish_reason": "stop"}
                    else:
                        return self._send(404, {"error": {"message": f"no route {self.path}"}})
                    usage = {"prompt_tokens": len(json.dumps(body).split()), "completion_tokens": len(content.split())}
                    self._send(200, {"id": f"mock-{n}", "object": "chat.completion", "model": body.get("model"),
                                     "choices": [choice], "usage": usage})
                finally:
                    with srv._lock:
                        srv.in_flight -= 1

        return Handler
