"""Save a trained model as a small adapter (or merged weights) and put an adapter back together.

An adapter directory holds: the PEFT adapter saved with ``save_embedding_layers=False`` (LoRA
weights plus PEFT's own trainable-token deltas), ``r2d_new_tokens.safetensors`` (the trained rows of
the R2D tokens, input and, if untied, output embeddings), the expanded tokenizer and
``r2d_adapter.json`` (base model name, token ids). ``load_trained`` loads the base, resizes it to
the saved tokenizer, writes the rows, applies and merges the adapter: a plain model comes back.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_META = "r2d_adapter.json"
ROWS_FILE = "r2d_new_tokens.safetensors"


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_META).is_file()


def is_tied(model) -> bool:
    """Input and output embeddings share storage (check on the plain model, before PEFT wraps it:
    a wrapper's ``.weight`` may be a fresh merged tensor)."""
    out = model.get_output_embeddings()
    return out is None or out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def token_rows(model, ids: list[int], tied: bool) -> dict:
    """The effective (adapter applied) embedding rows of ``ids``, as CPU tensors."""
    import torch

    idx = torch.tensor(ids, device=model.get_input_embeddings().weight.device)
    with torch.no_grad():
        rows = {"input": model.get_input_embeddings()(idx).detach().float().cpu().contiguous()}
        out = model.get_output_embeddings()
        if out is not None and not tied:
            eye = torch.eye(rows["input"].shape[1], device=idx.device, dtype=rows["input"].dtype)
            rows["output"] = out(eye).T[idx].detach().float().cpu().contiguous()  # works through adapters
    return rows


def save_adapter(peft_model, tokenizer, out: str | Path, base_model: str, ids: list[int], mode: str,
                 tied: bool, reasoning: bool = True) -> None:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out, save_embedding_layers=False)
    save_file(token_rows(peft_model, ids, tied), str(out / ROWS_FILE))
    tokenizer.save_pretrained(out)
    meta = {"base_model": base_model, "token_ids": ids, "tokens": tokenizer.convert_ids_to_tokens(ids),
            "vocab_size": len(tokenizer), "mode": mode, "tied_embeddings": tied, "reasoning": reasoning}
    (out / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")


def save_merged(model, tokenizer, out: str | Path) -> None:
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


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


def load_trained(path: str | Path, dtype: str = "float32"):
    """(model, tokenizer) from an r2d adapter directory: base + rows + adapter, merged."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r2d.models import resolve_model

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
