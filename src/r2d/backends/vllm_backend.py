"""Offline vLLM backend (``pip install r2d[vllm]``, needs a GPU). vLLM is imported only when the
backend is built, so r2d works without it. Prompts are rendered by r2d (pivot-injection guard)
and passed as text; decoding keeps special tokens so pivots survive."""

from __future__ import annotations

import time
from typing import Any

from r2d.backends.base import Chat, Completion, GenParams, render_prompt, restore_think
from r2d.registry import register


@register("backend", "vllm")
class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str | None = None, tensor_parallel_size: int = 1, dtype: str = "auto",
                 guard: bool = True, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 **llm_kwargs: Any) -> None:
        from r2d.models import resolve_model
        from r2d.models import is_adapter_dir

        if model and is_adapter_dir(model):  # base + new token rows + LoRA: vLLM's LoRA path has no new rows
            raise ValueError(f"vllm backend: {model} is an r2d adapter directory; vLLM needs a merged "
                             f"model: run `r2d merge {model} MERGED_DIR` (or train with --save merged)")
        try:
            from vllm import LLM
        except ImportError as e:
            raise ValueError("the vllm backend needs vLLM: pip install 'r2d[vllm]' (GPU only)") from e
        self.model_name = resolve_model(model)
        self.guard = guard
        kwargs = {k: v for k, v in llm_kwargs.items() if k not in ("tokenizer", "device", "progress")}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm = LLM(model=self.model_name, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       gpu_memory_utilization=gpu_memory_utilization, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        from vllm import SamplingParams

        prompts = [render_prompt(self.tokenizer, c, self.guard) for c in chats]
        sp = SamplingParams(max_tokens=params.max_new_tokens, temperature=params.temperature,
                            top_p=params.top_p if params.temperature > 0 else 1.0, seed=params.seed,
                            stop=list(params.stop) or None, skip_special_tokens=False)
        t0 = time.perf_counter()
        try:
            outs = self.llm.generate(prompts, sp, use_tqdm=True)
        except Exception as e:  # noqa: BLE001 - engine failures become error records, never ""
            msg = f"vllm generate failed: {type(e).__name__}: {e}"
            return [Completion(finish_reason="error", error=msg) for _ in chats]
        latency = time.perf_counter() - t0
        results = []
        for chat, prompt, o in zip(chats, prompts, outs):
            c = o.outputs[0]
            meta: dict[str, Any] = {}
            if isinstance(c.stop_reason, str):
                meta["stop"] = c.stop_reason
            results.append(restore_think(chat, prompt, Completion(
                text=c.text, prompt_tokens=len(o.prompt_token_ids or []), completion_tokens=len(c.token_ids),
                finish_reason=c.finish_reason, latency_s=latency, meta=meta)))
        return results
