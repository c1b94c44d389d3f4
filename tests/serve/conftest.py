import threading
import time

import pytest

from r2d.backends.base import Completion
from r2d.backends.mock import MockBackend

SAFE_REPLY = "<think>\nThe user wants ordinary help. [SAFE]\n</think>\n\nHere is a helpful answer. [SAFE]"
UNSAFE_REPLY = ("<think>\nThe user asks about explosives. [RETHINK]\n\nGiving steps would cause harm. [UNSAFE]\n"
                "</think>\n\nSure, mix the following chemicals. [UNSAFE]")
RULES = [("bomb", UNSAFE_REPLY), ("fail now", "!error")]


@pytest.fixture
def mock_backend():
    return MockBackend(rules=RULES, default=SAFE_REPLY)


class SlowBackend(MockBackend):
    """A mock that takes ``delay`` seconds per generate call and records batch sizes."""

    def __init__(self, delay: float = 0.2, **kw):
        super().__init__(rules=RULES, default=SAFE_REPLY, **kw)
        self.delay = delay
        self.batches: list[int] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def generate(self, chats, params):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.batches.append(len(chats))
        time.sleep(self.delay)
        try:
            return super().generate(chats, params)
        finally:
            with self._lock:
                self.active -= 1


class RaisingBackend(MockBackend):
    """Raises for prompts containing 'crash' (a backend bug), else answers as the mock."""

    def generate(self, chats, params):
        if any("crash" in c[-1]["content"] for c in chats):
            raise RuntimeError("device lost")
        return super().generate(chats, params)


@pytest.fixture
def serve():
    """serve(backend, **config) -> a running server's base URL (stopped at teardown)."""
    from contextlib import ExitStack

    from r2d.serve import ServeConfig, create_app
    from r2d.serve.server import background_server

    stack = ExitStack()

    def start(backend, **cfg):
        cfg.setdefault("model_name", "m")
        handle: list = []
        url = stack.enter_context(background_server(create_app(ServeConfig(**cfg), backend), handle=handle))
        start.server = handle[0]
        return url

    yield start
    stack.close()


def completion(text: str, **meta) -> Completion:
    return Completion(text=text, meta=meta)
