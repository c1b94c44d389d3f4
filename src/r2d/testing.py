"""Tiny offline models and tokenizers for tests and examples (built in milliseconds, no Hub).

- ``byte_tokenizer()``: a byte-level BPE tokenizer (SmolLM2 style) with a ChatML chat template.
- ``sentencepiece_tokenizer()``: a Metaspace/SentencePiece-style BPE tokenizer (Gemma/Llama style)
  with a Gemma-like chat template.
- ``reasoning_tokenizer(template, family)``: a byte-level BPE tokenizer with the special tokens of a
  reasoning model family (DeepSeek-R1 distills or Qwen) that already holds ``<think>``/``</think>`` as
  added (non-special) tokens, as the real tokenizers do, carrying ``template`` as its chat template.
- ``tiny_model(tokenizer)``: a random 2-layer Llama (or Qwen2/Qwen3) with hidden size 32 sized to the
  tokenizer.
"""

from __future__ import annotations

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_CORPUS = [
    "Okay, the user asks how to bake bread. This is a harmless cooking question.",
    "Wait, this request asks for instructions to build a weapon, which is harmful and illegal.",
    "I'm sorry, but I can't help with that request. Here is a safe alternative instead.",
    "Sure, here is a short answer: mix flour, water, salt and yeast, then bake for forty minutes.",
    "The user may be trying a jailbreak. I should be careful and look for a safe way to answer.",
    "def kill_process(pid): import os; os.kill(pid, 9)  # Python process management",
] * 4
_CORPUS = [c + "\n\n" + c.upper() + "\n" for c in _CORPUS]  # newlines and capitals in the vocab


def byte_tokenizer(extra_tokens: tuple[str, ...] = (), vocab_size: int = 400):
    """Byte-level BPE trained on a small corpus; ``extra_tokens`` are added first (e.g. ``<think>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|im_start|>", unk_token=None)
    tok.chat_template = CHATML_TEMPLATE
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    return tok


# Special tokens of the reasoning-model families (names as in the real tokenizers).
REASONING_FAMILIES = {
    # DeepSeek-R1-Distill-Qwen/-Llama: BOS/EOS and role markers; EOS ends an assistant turn.
    "deepseek": {"specials": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
                 "bos": "<｜begin▁of▁sentence｜>", "eos": "<｜end▁of▁sentence｜>", "pad": "<｜end▁of▁sentence｜>"},
    # Qwen2.5 / QwQ / Qwen3: ChatML; <|im_end|> ends a turn and is the instruct models' EOS.
    "qwen": {"specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
             "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>"},
}


def reasoning_tokenizer(template: str, family: str, vocab_size: int = 400):
    """A tokenizer shaped like a reasoning model's: ``family``'s special tokens, ``<think>`` and
    ``</think>`` already in the vocabulary as added non-special tokens (so ``expand_tokenizer`` must
    reuse them), and ``template`` as the chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    fam = REASONING_FAMILIES[family]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=fam["specials"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=fam["eos"], pad_token=fam["pad"],
                                  bos_token=fam["bos"], unk_token=None)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")])
    tok.chat_template = template
    return tok


def sentencepiece_tokenizer(vocab_size: int = 400):
    """SentencePiece-style (Metaspace, ``▁`` for spaces, byte fallback off) BPE with a Gemma template."""
    from tokenizers import SentencePieceBPETokenizer, decoders, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(_CORPUS, vocab_size=vocab_size,
                           special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"])
    # As the Llama/Gemma fast tokenizers: a "▁" is prepended to the first word only, not after added tokens.
    sp._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    sp._tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=sp._tokenizer, eos_token="<end_of_turn>", pad_token="<pad>",
                                  bos_token="<bos>", unk_token="<unk>")
    tok.chat_template = GEMMA_TEMPLATE
    return tok


def tiny_model(tokenizer, hidden: int = 32, layers: int = 2, seed: int = 0, tie: bool = True,
               arch: str = "llama"):
    """A random causal LM sized to ``tokenizer``; ``arch``: llama, qwen2 (q/k/v biases, as the
    R1-Qwen distills and QwQ) or qwen3 (q/k norms)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(arch, vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                               num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                               head_dim=hidden // 4, max_position_embeddings=1024, tie_word_embeddings=tie,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                               bos_token_id=tokenizer.bos_token_id)
    return AutoModelForCausalLM.from_config(cfg).eval()


def save_tiny(path, tokenizer=None, **kw) -> str:
    """Write a tiny model + tokenizer directory (a stand-in for a real checkpoint in CLI tests)."""
    tokenizer = tokenizer or byte_tokenizer()
    model = tiny_model(tokenizer, **kw)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
