"""Server settings: one dataclass filled from the ``r2d serve`` flags (or directly, in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServeConfig:
    model_name: str = "r2d"  # the id clients send as ``model`` and /v1/models lists
    backend: str = "mock"
    policy: str = "raw"  # the default policy
    allowed_policies: list[str] = field(default_factory=list)  # besides ``policy``; a request may pick one of these
    policy_kwargs: dict = field(default_factory=dict)  # e.g. {"tau": 0.5, "refusal": "..."}
    api_keys: list[str] = field(default_factory=list)  # empty: no auth
    host: str = "127.0.0.1"
    port: int = 8000
    max_concurrency: int = 256  # requests admitted at once (generating or queued); more get 429
    retry_after_s: int = 1
    max_batch_size: int = 8  # in-process backends: requests gathered into one generate call
    batch_wait_ms: float = 10.0
    max_tokens_default: int = 512
    max_tokens_limit: int = 2048
    log_jsonl: str | None = None
    log_messages: bool = True  # --log-jsonl records the messages and raw text too
    graceful_timeout_s: float = 30.0
    stream_chunk_chars: int = 0  # a backend that does not stream: 0 = the whole text as one delta, N = N-char deltas

    def allowed(self) -> list[str]:
        return [self.policy] + [p for p in self.allowed_policies if p != self.policy]

    @staticmethod
    def read_keys(path: str | Path) -> list[str]:
        """API keys from a file, one per line (blank lines and ``#`` comments ignored)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--api-key-file {p}: no such file")
        keys = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not keys:
            raise ValueError(f"--api-key-file {p}: no keys in it")
        return keys
