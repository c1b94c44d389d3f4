"""Save a trained model as a small adapter (or merged weights); ``r2d.models`` reads them back.

An adapter directory holds: the PEFT adapter saved with ``save_embedding_layers=False`` (LoRA
weights plus PEFT's own trainable-token deltas), ``r2d_new_tokens.safetensors`` (the trained rows of
the R2D tokens, input and, if untied, output embeddings), the expanded tokenizer and
``r2d_adapter.json`` (base model name, token ids). ``r2d.models.load_trained`` loads the base, resizes it
to the saved tokenizer, writes the rows, applies and merges the adapter: a plain model comes back.
"""

from __future__ import annotations

import json
from pathlib import Path

from r2d.models import ADAPTER_META, ROWS_FILE, is_tied

__all__ = ["save_adapter", "save_merged", "token_rows", "is_tied"]


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
