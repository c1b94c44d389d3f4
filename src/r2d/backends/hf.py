"""Local transformers backend: batched, left-padded generation with stop strings and pivot probabilities.

Prompts are rendered with the tokenizer's chat template after ``prepare_messages`` (pivot-injection
guard, on by default), sorted by length so each batch pads little, and returned in input order.
Decoding keeps special/added tokens (pivots must survive) but cuts the text at the first
end-of-turn/eos token. ``model``/``tokenizer`` are public for white-box attacks, and ``loglik``
scores target strings given chats (GCG, AutoDAN, perplexity filters).

Logits processors come from ``GenParams.extra["logits_processors"]`` (instances, or callables that
take the tokenizer and return one); they run in that order, after a ``PivotRecorder`` that fills
``Completion.meta["pivot_probs"]`` with one entry per generated pivot.
"""

from __future__ import annotations

import time
from typing import Any

from r2d.backends.base import Chat, Completion, GenParams, render_prompt, restore_think, think_prefix
from r2d.backends.early_stop import AnswerWordStop
from r2d.registry import register

DECODE_MODES = ("pruned", "generate")
KV_CACHES = ("buffer", "dynamic")  # the pruned loop's KV cache: r2d's in-place BufferLayer, or transformers' DynamicCache
# the pruned loop's prompt forward: per group of similar lengths, the whole padded batch, or "auto": grouped on CPU (where
# its cost model was fitted and measured), padded elsewhere (several small forwards unmeasured on GPUs)
PREFILLS = ("auto", "grouped", "padded")
# generation-config fields (with their neutral values) that make ``model.generate`` search or reshape scores
# beyond plain greedy; a model that sets any of them is decoded by ``generate`` itself
_GENERATE_DEFAULTS: dict[str, Any] = {
    "num_beams": 1, "num_beam_groups": 1, "penalty_alpha": None, "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
    "min_length": 0, "min_new_tokens": None, "bad_words_ids": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "sequence_bias": None, "exponential_decay_length_penalty": None, "renormalize_logits": False,
    "guidance_scale": None, "assistant_model": None, "prompt_lookup_num_tokens": None,
    "watermarking_config": None, "dola_layers": None,
}


@register("backend", "hf")
class HFBackend:
    name = "hf"
    supports_logits_processors = True

    def __init__(self, model: Any = None, tokenizer: Any = None, dtype: str = "auto", device: str | None = "auto",
                 guard: bool = True, progress: bool = True, expand: bool = False, decode: str = "generate",
                 kv_cache: str = "buffer", prefill: str = "auto", trim_padding: bool = False) -> None:
        """``model``: an alias/path/Hub id (loaded with ``r2d.models.load_model``) or a loaded
        ``PreTrainedModel`` (then ``tokenizer`` is required). ``expand``: add the R2D token rows to a
        model that lacks them (off: a vanilla model is evaluated exactly as published). ``decode``:
        ``"generate"`` (default) uses ``model.generate``; ``"pruned"`` runs greedy batches through r2d's own
        KV-cache loop that drops finished rows from the batch (token-identical to ``generate``:
        tests/backends/test_hf_pruned_decode.py, bench/generate_throughput.py). Sampling and stop strings
        always use ``generate``. ``kv_cache``: the pruned loop's KV cache, ``"buffer"`` (default: written in place,
        ``r2d.backends.kv_cache``) or ``"dynamic"`` (transformers' ``DynamicCache``, which concatenates every
        step; the same tokens, kept for comparison: bench/kv_cache.py). ``prefill``: the pruned loop's prompt
        forward, ``"auto"`` (default: ``"grouped"`` on CPU, ``"padded"`` on other devices, where the grouping's cost
        model, fitted on one CPU thread, is unmeasured), ``"grouped"`` (one forward per group of rows of similar length, each padded to its own
        longest row, ``r2d.backends.prefill``) or ``"padded"`` (one forward over the whole left-padded batch, as
        ``generate``). ``trim_padding``: when rows are dropped, cut the KV columns that are left padding for
        every remaining row (opt-in: no measurable gain for SmolLM2 on CPU, where masked attention columns cost
        little). Both only skip padding (bench/prefill.py: CPU time and an exact-match check of the generated ids
        against ``prefill="padded", trim_padding=False``)."""
        if decode not in DECODE_MODES:
            raise ValueError(f"hf backend: decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
        if kv_cache not in KV_CACHES:
            raise ValueError(f"hf backend: kv_cache must be one of {', '.join(KV_CACHES)}, got {kv_cache!r}")
        if prefill not in PREFILLS:
            raise ValueError(f"hf backend: prefill must be one of {', '.join(PREFILLS)}, got {prefill!r}")
        if not isinstance(trim_padding, bool):
            raise ValueError(f"hf backend: trim_padding must be true or false, got {trim_padding!r}")
        self.decode, self.kv_cache, self.prefill, self.trim_padding = decode, kv_cache, prefill, trim_padding
        self._prunable: bool | None = None  # whether the model's KV cache allows dropping rows
        self._layers: list | None = None  # that cache's layers (``_cache_layers``)
        if model is None or isinstance(model, str):
            from r2d.models import DEFAULT_MODEL, load_model

            self.model_name = model or DEFAULT_MODEL
            self.model, self.tokenizer = load_model(self.model_name, dtype=dtype, device=device, expand=expand)
        else:
            if tokenizer is None:
                raise ValueError("hf backend: a loaded model needs tokenizer=")
            self.model, self.tokenizer = model, tokenizer
            self.model_name = getattr(model.config, "_name_or_path", "") or type(model).__name__
            if device and device != "auto":
                self.model.to(device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.guard = guard
        self.progress = progress

    # --- prompts -----------------------------------------------------------------------------
    @property
    def device(self):
        return next(self.model.parameters()).device

    def render(self, chat: Chat) -> str:
        return render_prompt(self.tokenizer, chat, self.guard)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the template supplies any BOS

    def prompt_ids(self, chat: Chat) -> list[int]:
        """Token ids of the rendered prompt."""
        return self._ids(self.render(chat))

    def _end_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (getattr(self.model, "generation_config", None), self.tokenizer):
            eos = getattr(src, "eos_token_id", None)
            ids.update(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []))
        for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != getattr(self.tokenizer, "unk_token_id", None):
                ids.add(tid)
        if self.tokenizer.pad_token_id is not None:
            ids.add(self.tokenizer.pad_token_id)
        return ids

    # --- generation --------------------------------------------------------------------------
    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        import torch
        from tqdm.auto import tqdm

        texts = [self.render(c) for c in chats]
        prompts = [self._ids(t) for t in texts]  # the texts are kept: restore_think reads them
        order = sorted(range(len(chats)), key=lambda i: -len(prompts[i]))
        bs = max(1, params.batch_size)
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        out: list[Completion | None] = [None] * len(chats)
        if params.temperature > 0:
            torch.manual_seed(params.seed)
        for batch in tqdm(batches, desc="generate", unit="batch", disable=not self.progress or len(batches) < 2):
            opened = [think_prefix(texts[i]) if chats[i] and chats[i][-1]["role"] != "assistant" else "" for i in batch]
            for i, c in zip(batch, self._generate_batch([prompts[i] for i in batch], params, opened)):
                out[i] = restore_think(chats[i], texts[i], c)
        return out  # type: ignore[return-value]

    def _processors(self, params: GenParams):
        from transformers import LogitsProcessor, LogitsProcessorList

        from r2d.backends.processors import PivotRecorder
        from r2d.pivots import pivot_ids

        procs = LogitsProcessorList()
        for p in params.extra.get("logits_processors", []):
            procs.append(p if isinstance(p, LogitsProcessor) else p(self.tokenizer))
        try:
            recorder = PivotRecorder(pivot_ids(self.tokenizer))
        except ValueError:  # a tokenizer without R2D tokens: nothing to record
            recorder = None
        if recorder is not None:
            procs.append(recorder)
        # policy processors (which act on pivots) go after the recorder so it sees the model's own view
        for p in params.extra.get("policy_processors", []):
            procs.append(p if isinstance(p, LogitsProcessor) else p(self.tokenizer))
        return procs, recorder

    def _generate_batch(self, prompts: list[list[int]], params: GenParams,
                        opened: list[str] | None = None) -> list[Completion]:
        """``opened``: per prompt, the think block its template opened (read by early stopping)."""
        import torch

        t0 = time.perf_counter()
        tok = self.tokenizer
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        procs, recorder = self._processors(params)
        sample = params.temperature > 0
        kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, do_sample=sample, pad_token_id=pad,
                                      logits_processor=procs, eos_token_id=sorted(self._end_ids()))
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        stops = [s for s in params.stop if s]
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=tok)
        early = None
        if params.stop_after_answer_words is not None:
            early = AnswerWordStop(tok, params.stop_after_answer_words, opened or [""] * len(prompts), self._end_ids())
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([early.criteria(width)])
        try:
            with torch.inference_mode():
                if self._use_pruned(params, stops):
                    seqs = self._greedy_pruned(input_ids, attention, procs, params.max_new_tokens, early)
                else:
                    seqs = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # OOM, device errors: error records, not ""
            msg = f"hf generate failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            return [Completion(finish_reason="error", error=msg, latency_s=time.perf_counter() - t0) for _ in prompts]
        latency = time.perf_counter() - t0
        end_ids = self._end_ids()
        results = []
        for row, p in enumerate(prompts):
            gen = seqs[row, width:].tolist()
            n = next((k for k, t in enumerate(gen) if t in end_ids), None)
            cut = early is not None and row in early.stopped  # stopped early: what follows is padding
            ended = n is not None and not cut
            gen = gen[:n] if n is not None else gen
            text = tok.decode(gen, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            finish = "stop" if ended else "length"
            meta: dict[str, Any] = {"stopped_after_answer_words": early.limit} if cut else {}
            hit = min(((text.find(s), s) for s in stops if s in text), default=None)
            if hit is not None:
                text, finish, meta["stop"] = text[:hit[0]], "stop", hit[1]
            if recorder is not None:
                meta["pivot_probs"] = self._pivot_probs(recorder, row, gen)
            results.append(Completion(text=text, prompt_tokens=len(p), completion_tokens=len(gen) + int(ended),
                                      finish_reason=finish, latency_s=latency, meta=meta))
        return results

    def _use_pruned(self, params: GenParams, stops: list[str]) -> bool:
        """The pruned loop covers greedy decoding without stop strings on models whose cache rows can be
        dropped (plain per-layer KV tensors); everything else goes through ``model.generate``."""
        if self.decode != "pruned" or params.temperature > 0 or stops or self.model.config.is_encoder_decoder:
            return False
        gc = getattr(self.model, "generation_config", None)
        if gc is not None and any(getattr(gc, k, d) not in (d, None) for k, d in _GENERATE_DEFAULTS.items()):
            return False  # the model's generation config asks generate for beams or its own logits processors
        if self._prunable is None:
            from transformers.cache_utils import DynamicLayer

            layers = self._cache_layers()
            self._prunable = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
        return self._prunable

    def _cache_layers(self) -> list:
        """The layers of the ``DynamicCache`` that ``generate`` would build for this model (built once)."""
        if self._layers is None:
            from transformers import DynamicCache

            self._layers = DynamicCache(config=self.model.config).layers
        return self._layers

    def _greedy_pruned(self, input_ids, attention, procs, max_new_tokens: int, early=None):
        """Greedy decoding with a KV cache, dropping each row from the running batch once it emits an
        end token, so a batch costs what its live rows cost rather than running to its longest member.

        Returns ``prompt + generated`` ids shaped like ``model.generate``'s output (finished rows padded).
        It matches ``generate``'s greedy path step for step: the same left padding, attention mask and
        position ids (``cumsum(mask) - 1``), float32 logits of the last position, logits processors called
        with the whole batch's ids and scores (finished rows get a zero score row they never read back),
        argmax, and the same end ids. Only the batch shape of later steps differs. The KV cache is written in
        place (``r2d.backends.kv_cache``) rather than concatenated every step, unless ``kv_cache="dynamic"``.
        With ``prefill="grouped"`` the prompt forward runs per group of rows of similar length
        (``r2d.backends.prefill``); with ``trim_padding`` the KV columns left of every live row's prompt are cut
        when rows are dropped (positions are explicit, so each row attends to the same keys)."""
        import torch

        from r2d.backends.kv_cache import buffer_cache, keep_rows
        from r2d.backends.prefill import grouped_prefill, prefill_groups

        model, pad = self.model, self.tokenizer.pad_token_id
        end = torch.tensor(sorted(self._end_ids()), device=input_ids.device)
        batch, width = input_ids.shape
        position = (attention.long().cumsum(-1) - 1).masked_fill(attention == 0, 0)
        if self.kv_cache == "dynamic":
            from transformers import DynamicCache

            cache = DynamicCache(config=model.config)
        else:
            cache = buffer_cache(len(self._cache_layers()), width + max_new_tokens)
        lengths = attention.sum(-1)
        groups = prefill_groups(self.prefill, lengths.tolist(), input_ids.device.type)
        logits = grouped_prefill(model, input_ids, attention, position, cache, groups)
        seqs = torch.cat([input_ids, torch.full((batch, max_new_tokens), pad, dtype=input_ids.dtype,
                                                device=input_ids.device)], dim=1)
        live = torch.arange(batch, device=input_ids.device)  # batch rows still decoding
        mask, last = attention, position[:, -1]
        pads = width - lengths  # per batch row: its left padding (columns mask and cache hold from ``cut`` on)
        cut = 0
        for step in range(max_new_tokens):
            logits = logits.to(dtype=torch.float32)
            if procs:
                scores = logits if len(live) == batch else \
                    torch.zeros((batch, logits.shape[-1]), dtype=logits.dtype, device=logits.device).index_copy_(
                        0, live, logits)
                scores = procs(seqs[:, :width + step], scores)
                logits = scores if len(live) == batch else scores.index_select(0, live)
            nxt = logits.argmax(-1)
            seqs[live, width + step] = nxt
            going = ~torch.isin(nxt, end)
            if early is not None:  # rows whose answer already has enough words (AnswerWordStop)
                going &= torch.tensor([not (ok and early.check(int(r), seqs[r, width:width + step + 1].tolist()))
                                       for r, ok in zip(live.tolist(), going.tolist())], device=going.device)
            if step == max_new_tokens - 1 or not bool(going.any()):
                break
            if not bool(going.all()):
                keep = going.nonzero().squeeze(-1)
                live, nxt, mask, last = live[keep], nxt[keep], mask[keep], last[keep]
                drop = int(pads[live].min()) - cut if self.trim_padding else 0  # padding of every live row
                keep_rows(cache, keep, drop)
                mask, cut = mask[:, drop:], cut + drop
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            last = last + 1
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None], cache=cache,
                           use_cache=True).logits[:, -1]
        return seqs

    def _pivot_probs(self, recorder, row: int, gen: list[int]) -> list[dict]:
        by_id = dict(zip(recorder.ids.pivots, ("[SAFE]", "[UNSAFE]", "[RETHINK]")))
        out = []
        for step, t in enumerate(gen):
            if t in by_id:
                probs = recorder.probs_for(row, step)
                if probs is not None:
                    out.append({"pivot": by_id[t], "step": step, **probs})
        return out

    # --- scoring -----------------------------------------------------------------------------
    def loglik(self, chats: list[Chat], targets: list[str], batch_size: int = 8) -> list[float]:
        """Sum of log-probabilities of each ``target`` as the assistant's reply to ``chats[i]``
        (teacher-forced, target tokens only). Batched with right padding."""
        import torch

        if len(chats) != len(targets):
            raise ValueError(f"loglik: {len(chats)} chats but {len(targets)} targets")
        pairs = []
        for chat, target in zip(chats, targets):
            prompt = self.prompt_ids(chat)
            tgt = self.tokenizer(target, add_special_tokens=False)["input_ids"]
            if not tgt:
                raise ValueError(f"loglik: target {target!r} tokenizes to nothing")
            pairs.append((prompt, tgt))
        scores: list[float] = []
        pad = self.tokenizer.pad_token_id
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            width = max(len(p) + len(t) for p, t in chunk)
            ids = torch.tensor([p + t + [pad] * (width - len(p) - len(t)) for p, t in chunk], device=self.device)
            mask = torch.tensor([[1] * (len(p) + len(t)) + [0] * (width - len(p) - len(t)) for p, t in chunk],
                                device=self.device)
            with torch.no_grad():
                logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for row, (p, t) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) + len(t) - 1, device=self.device)
                scores.append(float(logp[row, pos, torch.tensor(t, device=self.device)].sum()))
        return scores
