"""Where benchmark and seed data come from.

Files are read from the data directory: ``--data-dir``, else ``$R2D_DATA_DIR``, else the download
cache ``$R2D_CACHE_DIR/data`` (default ``~/.cache/r2d/data``). The directory uses the same folder
names as ``shared/data`` (``jbb/``, ``harmbench/``, ``xstest/``, ``advbench/``, ``strongreject/``,
``templates/``, ``benign/``). A file missing there is downloaded from its upstream URL into the
cache (users with internet); without internet the error names the file and the setting to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

_override: Path | None = None


def set_data_dir(path: str | Path | None) -> None:
    global _override
    _override = Path(path) if path else None


def data_dir() -> Path:
    if _override:
        return _override
    if os.environ.get("R2D_DATA_DIR"):
        return Path(os.environ["R2D_DATA_DIR"])
    from r2d.models import cache_dir

    return cache_dir() / "data"


def data_file(rel: str, url: str | None = None, timeout: float = 60.0) -> Path:
    """The local path of ``rel`` in the data directory, downloading it from ``url`` if missing."""
    path = data_dir() / rel
    if path.is_file():
        return path
    if not url:
        raise FileNotFoundError(f"data file {rel} not found in data directory {data_dir()} "
                                f"(set R2D_DATA_DIR or --data-dir)")
    import httpx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as r:
            r.raise_for_status()
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
    except httpx.HTTPError as e:
        tmp.unlink(missing_ok=True)
        raise ConnectionError(f"could not download {rel} from {url}: {e} "
                              f"(no internet? point R2D_DATA_DIR at a local copy)") from None
    tmp.replace(path)
    return path
