"""Provenance for every number r2d writes: git commit, package versions, data hashes, time."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
from functools import lru_cache
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sampled_digest(path: str | Path, samples: int = 16, block: int = 1 << 16) -> str:
    """sha256 of a file's size and ``samples`` evenly spaced blocks (whole file when small): a cheap
    content identity for multi-GB weights; a retrained model changes it, a copied one keeps it."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= samples * block:
            h.update(f.read())
        else:
            for i in range(samples):
                f.seek((size - block) * i // (samples - 1))
                h.update(f.read(block))
    return h.hexdigest()


def model_fingerprint(name: str | None) -> dict:
    """Identity of a local model: resolved path, sha256 of config.json and a sampled content digest of
    every weight file (aliases are looked up in the conversion cache; Hub ids and API models are
    recorded by name only)."""
    if not name:
        return {}
    from r2d.models import ALIASES, cache_dir

    path = cache_dir() / "models" / name if name in ALIASES else Path(str(name)).expanduser()
    if not path.is_dir():
        return {"resolved_path": str(path.resolve()), "digest": sampled_digest(path)} if path.is_file() else {}
    out: dict = {"resolved_path": str(path.resolve())}
    if (path / "config.json").is_file():
        out["config_sha256"] = sha256_file(path / "config.json")
    out["weights"] = {p.name: sampled_digest(p) for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))}
    return out


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The r2d checkout's commit (with ``-dirty`` if it has uncommitted changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("r2d", "torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def base_provenance() -> dict:
    return {"git_commit": git_commit(), "versions": versions(), "time": now(), "host": platform.node()}
