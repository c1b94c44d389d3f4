"""Run an app under uvicorn in a background thread on an ephemeral loopback port (tests, benchmarks,
notebooks):

    with background_server(create_app(cfg, backend)) as url:   # url = "http://127.0.0.1:PORT/v1"
        OpenAI(base_url=url, api_key="k").chat.completions.create(...)

Leaving the block shuts the server down gracefully (in-flight requests finish, then the lifespan ends).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0, graceful_s: int = 10,
                      handle: list | None = None) -> Iterator[str]:
    """``handle``, if given, receives the ``uvicorn.Server`` (to trigger a shutdown from a test)."""
    import uvicorn

    from r2d.serve.cli import KEEP_ALIVE_S

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=graceful_s, backlog=2048,
                            timeout_keep_alive=KEEP_ALIVE_S)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, name="r2d-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("r2d serve: the server did not start")
        time.sleep(0.01)
    if handle is not None:
        handle.append(server)
    sock_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{sock_port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_s + 10)
