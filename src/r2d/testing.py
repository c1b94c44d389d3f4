"""Tiny offline models and tokenizers for tests and examples (built in milliseconds, no Hub).

- ``byte_tokenizer()``: a byte-level BPE tokenizer (SmolLM2 style) with a ChatML chat template.
- ``sentencepiece_tokenizer()``: a Metaspace/SentencePiece-style BPE tokenizer (Gemma/Llama style)
  with a Gemma-like chat template.
- ``tiny_model(tokenizer)``: a random 2-layer Llama with hidden size 32 sized to the tokenizer.
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


def tiny_model(tokenizer, hidden: int = 32, layers: int = 2, seed: int = 0, tie: bool = True):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, tie_word_embeddings=tie,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=tokenizer.bos_token_id)
    return LlamaForCausalLM(cfg).eval()


def save_tiny(path, tokenizer=None, **kw) -> str:
    """Write a tiny model + tokenizer directory (a stand-in for a real checkpoint in CLI tests)."""
    tokenizer = tokenizer or byte_tokenizer()
    model = tiny_model(tokenizer, **kw)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
