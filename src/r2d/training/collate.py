"""Turn SwaRD chat rows into (input_ids, labels) with the loss on the assistant turn only, and pad
batches.

The assistant span is found for any chat template: the prompt is rendered with
``add_generation_prompt=True``, the full chat without it; if the full text starts with the prompt
text and the prompt's ids are a prefix of the full ids, the prefix length is the boundary, else the
boundary comes from character offsets. The template's end-of-turn token stays in the labels (the
model learns to stop); whatever the template writes after it (a newline) is masked.

Reasoning-model templates: the DeepSeek-R1 distills' template drops everything up to ``</think>``
from every assistant turn it renders, and opens ``<think>`` in its generation prompt. History turns
keep the template's rendering (the model was trained on history without reasoning), but the final
turn is the target and must keep its reasoning: when the template's own rendering of it does not
extend the generation prompt or loses the reasoning, the training text is the generation prompt plus
the reply (minus the ``<think>`` the prompt already opened) plus the template's end-of-turn text,
i.e. exactly what the model sees and writes at inference. Templates that keep the final turn's
reasoning (QwQ, Qwen3, ChatML) render it themselves, with their own whitespace rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from r2d.pivots import THINK_CLOSE, THINK_OPEN, strip_pivots

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _end_of_turn_ids(tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for t in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "</s>"):
        i = tokenizer.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tokenizer.unk_token_id and i >= 0:
            ids.add(i)
    return ids


def assistant_boundary(tokenizer, prompt_text: str, full_text: str, full_ids: list[int]) -> int:
    """Index of the first assistant token in ``full_ids``."""
    if not full_text.startswith(prompt_text):
        raise ValueError("chat template renders the prompt differently inside the full chat")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] == prompt_ids:
        return len(prompt_ids)
    # Token boundaries differ at the seam: the first token that ends after the prompt's last char.
    offsets = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut = len(prompt_text)
    return next((i for i, (_, end) in enumerate(offsets) if end > cut), len(full_ids))


_SENTINEL = "R2D-END-OF-REPLY-PROBE"


def _turn_end(tokenizer, history: list[dict]) -> str:
    """The text the template writes after an assistant reply (``<|im_end|>\n``, ``<｜end▁of▁sentence｜>``)."""
    text = _render(tokenizer, history + [{"role": "assistant", "content": _SENTINEL}], False)
    if _SENTINEL not in text:
        raise ValueError("the chat template does not render the assistant reply")
    return text[text.rindex(_SENTINEL) + len(_SENTINEL):]


def _keeps_reply(segment: str, reply: str) -> bool:
    """Whether the template's rendering of the final assistant turn (``segment``, the text after the
    generation prompt) still holds every part of ``reply``: its reasoning and its answer."""
    if THINK_CLOSE in reply and THINK_CLOSE not in segment:
        return False
    return all(part.replace(THINK_OPEN, "").strip() in segment for part in reply.split(THINK_CLOSE))


def render_row(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """(prompt text, full text) of a chat whose last turn is the assistant target; the full text
    starts with the prompt text and holds the whole reply, reasoning included."""
    messages = [dict(m) for m in messages]
    prompt_text = _render(tokenizer, messages[:-1], True)
    opened = prompt_text[prompt_text.rstrip().rfind(THINK_OPEN):] if prompt_text.rstrip().endswith(THINK_OPEN) else ""
    if opened:  # the template opens <think> (R1 distills, QwQ, think_in_prompt)
        reply = messages[-1]["content"].lstrip()
        if not reply.startswith(THINK_OPEN):
            raise ValueError("the chat template opens <think> in its generation prompt but this reply does not "
                             "start with <think> (train with --think-in-prompt false on data without reasoning; "
                             "a template that opens it itself, as R1's and QwQ's do, needs replies with reasoning)")
        messages[-1]["content"] = THINK_OPEN + "\n" + reply[len(THINK_OPEN):].lstrip()
    reply = messages[-1]["content"]
    full_text = _render(tokenizer, messages, False)
    if full_text.startswith(prompt_text) and _keeps_reply(full_text[len(prompt_text):], reply):
        return prompt_text, full_text
    # The template rewrites the final turn (R1: drops the reasoning): write the reply after the prompt.
    continuation = reply[len(opened):] if opened and reply.startswith(opened) else reply
    return prompt_text, prompt_text + continuation + _turn_end(tokenizer, messages[:-1])


def tokenize_row(tokenizer, row: dict, max_seq_len: int, strip: bool = False) -> Example:
    """One chat row -> ids and labels (prompt masked with -100), truncated to ``max_seq_len``
    keeping the start of the assistant turn (the prompt loses its oldest tokens first)."""
    messages = [dict(m) for m in row["messages"]]
    if strip:
        messages[-1]["content"] = strip_pivots(messages[-1]["content"])
    prompt_text, full_text = render_row(tokenizer, messages)
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    start = assistant_boundary(tokenizer, prompt_text, full_text, ids)
    eot = _end_of_turn_ids(tokenizer)
    end = len(ids)
    last = max((i for i in range(start, len(ids)) if ids[i] in eot), default=None)
    if last is not None:
        end = last + 1  # keep the end-of-turn token, drop the template's trailing newline
    elif tokenizer.eos_token_id is not None:  # a template without an end-of-turn marker
        ids = ids[:end] + [tokenizer.eos_token_id]
        end += 1
    ids = ids[:end]
    prompt, answer = ids[:start], ids[start:end]
    if len(ids) > max_seq_len:
        keep_prompt = min(len(prompt), max(max_seq_len - len(answer), max_seq_len // 2))
        prompt = prompt[len(prompt) - keep_prompt:]
        answer = answer[: max_seq_len - keep_prompt]
    return Example(prompt + answer, [IGNORE] * len(prompt) + list(answer))


def answer_only(reply: str) -> str:
    """The no-reasoning control's target: ``reply`` without its think block and without pivots (the
    answer after ``</think>``; a reply without any think block is already an answer)."""
    if THINK_CLOSE in reply:
        reply = reply.partition(THINK_CLOSE)[2].replace(THINK_CLOSE, "")
    elif THINK_OPEN in reply:
        raise ValueError("the reply opens <think> but never closes it: no answer to keep for --no-reasoning")
    answer = strip_pivots(reply.replace(THINK_OPEN, "")).strip()
    if not answer:
        raise ValueError("the reply has no answer after </think> (--no-reasoning keeps only the answer)")
    return answer


def without_reasoning(row: dict) -> dict:
    """``row`` with its final (assistant) turn reduced to ``answer_only`` (the --no-reasoning control:
    same prompts, plain refusal/helpful SFT). A template that opens ``<think>`` itself then fails in
    ``tokenize_row`` with a clear error: such a model cannot be trained to answer without reasoning."""
    messages = [dict(m) for m in row["messages"]]
    messages[-1]["content"] = answer_only(messages[-1]["content"])
    return {**row, "messages": messages}


class SwardDataset:
    """Pre-tokenised rows (a plain sequence: the Trainer's length-grouped sampler reads ``input_ids``).
    ``strip``: pivots removed (--strip-pivots); ``no_reasoning``: answers only (--no-reasoning)."""

    def __init__(self, rows: list[dict], tokenizer, max_seq_len: int, strip: bool = False, source: str = "data",
                 no_reasoning: bool = False):
        self.items = []
        for n, row in enumerate(rows, 1):
            try:
                ex = tokenize_row(tokenizer, without_reasoning(row) if no_reasoning else row, max_seq_len, strip)
            except ValueError as e:
                raise ValueError(f"{source}: row {n}: {e}") from None
            if all(lab == IGNORE for lab in ex.labels):
                raise ValueError(f"{source}: row {n}: no assistant tokens left after truncation to {max_seq_len}")
            self.items.append({"input_ids": ex.input_ids, "labels": ex.labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    @property
    def n_tokens(self) -> int:
        return sum(len(x["input_ids"]) for x in self.items)


class PadCollator:
    """Right-pad a batch to its longest row (optionally to a multiple of ``multiple``)."""

    def __init__(self, pad_id: int, multiple: int = 1):
        self.pad_id, self.multiple = pad_id, multiple

    def __call__(self, batch: list[dict]):
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
