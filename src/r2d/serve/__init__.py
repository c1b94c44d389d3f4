"""``r2d serve``: an OpenAI-compatible chat server that puts a model behind R2D's pivot-aware policies.

- ``config``: ``ServeConfig`` (flags -> one dataclass).
- ``schemas``: the request/response bodies (pydantic) and the OpenAI-style error body.
- ``guard``: the one place the server neutralises pivot injection in incoming messages.
- ``present``: what the client sees of a completion under a policy (``present``) and the same
  over a stream (``StreamFilter``).
- ``batching``: dynamic batching for in-process backends; ``engine``: one async face for every backend.
- ``metrics``: Prometheus counters/histograms; ``app``: the FastAPI routes; ``cli``: the subcommand.
"""

from r2d.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(*args, **kwargs):
    from r2d.serve.app import create_app as _create

    return _create(*args, **kwargs)
