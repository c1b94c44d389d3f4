"""``TrainConfig``: every knob of ``r2d train``, loadable from YAML and overridable by CLI flags
(``r2d.config.build_config``). Defaults suit the 2-core CPU default setup; the paper's values are
noted in the help texts."""

from __future__ import annotations

from dataclasses import dataclass, field


def _f(default, help_: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help_, **kw})
    return field(default=default, metadata={"help": help_, **kw})


@dataclass
class TrainConfig:
    model: str = _f("smollm2-135m", "base model: alias, local dir or Hub id")
    data: str = _f("", "SwaRD training data (.jsonl/.json/.parquet or Hub id)")
    output: str = _f("", "output directory (checkpoints, final model, config, provenance)")
    mode: str = _f("lora", "lora (LoRA + new token rows), full (all weights) or rows (new token rows only)")
    save: str = _f("auto", "adapter, merged or auto (adapter for lora/rows, merged for full)")
    # objective
    cpo: bool = _f(True, "add the CPO term at pivot positions (--no-cpo: SwaRD only, paper Table 4)")
    cpo_weight: float = _f(1.0, "lambda, the CPO weight (paper/official code: 1)")
    cpo_reduction: str = _f("per_class", "per_class: mean CPO over [SAFE] positions + mean over [UNSAFE] "
                             "positions (the official code); pooled: one mean over all pivot positions")
    cpo_rethink: bool = _f(False, "also contrast [RETHINK] positions against both [SAFE] and [UNSAFE] "
                           "(paper: [RETHINK] gets cross-entropy only)")
    strip_pivots: bool = _f(False, "remove pivot tokens from the data (the 'w/o pivot' ablation)")
    no_reasoning: bool = _f(False, "the no-reasoning control: the assistant turn reduced to the answer (no <think> "
                            "block, no pivots; plain refusal/helpful SFT as in Safety-tuned Llamas); implies "
                            "no CPO and a template that does not open <think>")
    think_in_prompt: bool = _f(True, "the saved chat template opens <think> in its generation prompt (as R1's), "
                               "so the model always reasons first; <think> is then masked as prompt")
    # LoRA (paper: r 64, alpha 64)
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_targets: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
                                 "LoRA target modules")
    # optimisation (paper: lr 2e-4, cosine, warmup 0.02, 1 epoch)
    learning_rate: float = _f(2e-4, "peak learning rate")
    lr_scheduler: str = _f("cosine", "transformers scheduler name")
    warmup_ratio: float = _f(0.02, "fraction of steps spent warming up")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    epochs: float = _f(1.0, "training epochs (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: run the epochs)")
    batch_size: int = _f(4, "per-device batch size")
    grad_accum: int = _f(1, "gradient accumulation steps")
    max_seq_len: int = _f(512, "truncate examples to this many tokens (the assistant turn's start is kept)")
    group_by_length: bool = _f(True, "batch examples of similar length (less padding)")
    seed: int = _f(0, "random seed")
    dtype: str = _f("auto", "auto (bf16 on CUDA if supported, else fp32), float32 or bfloat16")
    gradient_checkpointing: bool = _f(False, "trade compute for memory (recompute decoder layers in the backward)")
    gradient_checkpointing_every: int = _f(1, "with gradient_checkpointing: checkpoint every N-th decoder layer only "
                                           "(1: all; 2: half of them...), the others keep their activations: "
                                           "back some speed for memory the full checkpointing would leave unused")
    # checkpoints and logging
    save_steps: int = _f(50, "write a checkpoint every N steps (resumed automatically)")
    save_total_limit: int = _f(2, "keep at most this many checkpoints")
    logging_steps: int = _f(5, "log loss / CPO loss / pivot accuracy every N steps")
    resume: bool = _f(True, "resume from the newest checkpoint in the output dir if it was written by the same "
                      "config and data (another config there is an error)")
    overwrite: bool = _f(False, "empty the output dir first (it holds another run or other files)")
    report_to: str = _f("none", "transformers report_to (none, tensorboard, wandb...)")

    def __post_init__(self) -> None:
        if self.mode not in ("lora", "full", "rows"):
            raise ValueError(f"mode: expected lora, full or rows, got {self.mode!r}")
        if self.save not in ("auto", "adapter", "merged"):
            raise ValueError(f"save: expected auto, adapter or merged, got {self.save!r}")
        if self.mode == "full" and self.save == "adapter":
            raise ValueError("save: adapter needs mode lora or rows (full fine-tuning saves a merged model)")
        if self.cpo_reduction not in ("per_class", "pooled"):
            raise ValueError(f"cpo_reduction: expected per_class or pooled, got {self.cpo_reduction!r}")
        if self.no_reasoning:  # nothing to contrast and nothing to open: forced, recorded in the saved config
            self.cpo, self.think_in_prompt = False, False
        if self.gradient_checkpointing_every < 1:
            raise ValueError(f"gradient_checkpointing_every: must be at least 1, got {self.gradient_checkpointing_every}")
        if self.max_seq_len < 8:
            raise ValueError(f"max_seq_len: must be at least 8, got {self.max_seq_len}")

    @property
    def save_kind(self) -> str:
        if self.save != "auto":
            return self.save
        return "merged" if self.mode == "full" else "adapter"
