"""``R2DTrainer``: a ``transformers.Trainer`` whose ``compute_loss`` adds the CPO term (paper Eq. 4)
to the SwaRD cross-entropy, and ``train(cfg)`` which builds the model (LoRA / full / new rows only),
runs, resumes after a kill and saves a loadable model with config and provenance."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from r2d.pivots import pivot_ids, template_opens_think
from r2d.training.config import TrainConfig
from r2d.training.distributed import (device_args, embeddings_hidden, enable_cpu_fsdp, fit_fsdp_plugin,
                                        global_counts, shard_shared_embeddings)
from r2d.training.losses import (cpo_loss, head_ce_and_pivot_columns, pivot_stats, pivot_targets,
                                 stats_from_columns)
from r2d.training.saving import is_tied
from r2d.training.token_rows import token_rows_head

CONFIG_FILE = "r2d_train_config.yaml"
META_FILE = "r2d_train_meta.json"


# config fields of models that scale / soft-cap logits after the LM head (as TRL's fused head checks)
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier",
                    "lm_head_multiplier")


@contextmanager
def _returning_input(module: torch.nn.Module):
    """Make ``module`` (the LM head) return its input for the duration, so the model's forward
    yields the final hidden states at the ``logits_to_keep`` positions instead of logits."""
    module.forward = lambda x, *a, **k: x
    try:
        yield
    finally:
        del module.forward


class EpochSeededLengthSampler(LengthGroupedSampler):
    """transformers' length-grouped sampler with a generator reseeded from (seed, epoch) at each
    epoch (the stock one draws from the global RNG, so its order changes after a resume)."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return super().__iter__()


class R2DTrainer(Trainer):
    """Mean cross-entropy on the assistant turn (labels are -100 elsewhere; equal to the model's own
    shifted CE, computed without full logits) plus ``cpo_weight`` x CPO at pivot positions (reduced
    per class or pooled, ``r2d.training.losses``). Logs ``ce_loss``, ``cpo_loss`` and ``pivot_acc``."""

    head_rows = 256  # positions per LM-head chunk: 256 x 49k-vocab fp32 logits = 50 MB

    def __init__(self, *args, pivots: tuple[int, int, int], cpo: bool = True, cpo_weight: float = 1.0,
                 cpo_rethink: bool = False, cpo_reduction: str = "per_class", **kw):
        super().__init__(*args, **kw)
        self.pivots, self.cpo, self.cpo_weight, self.cpo_rethink = pivots, cpo, cpo_weight, cpo_rethink
        self.cpo_reduction = cpo_reduction
        self.loss_is_scaled_for_ga = False  # both terms are per-batch means: the Trainer divides by GA
        self._acc = {"ce": 0.0, "cpo": 0.0, "n": 0, "piv": 0, "ok": 0}
        text_cfg = self.accelerator.unwrap_model(self.model).config.get_text_config()
        self._head_is_last_op = not any(getattr(text_cfg, k, None) is not None for k in LOGIT_TRANSFORMS)

    def create_accelerator_and_postprocess(self) -> None:
        """As the Trainer's, plus FSDP on CPU processes (``r2d.training.distributed``)."""
        super().create_accelerator_and_postprocess()
        if enable_cpu_fsdp(self.accelerator):
            self.is_fsdp_enabled = True
        self._embeddings_presharded = False
        if self.is_fsdp_enabled:
            fit_fsdp_plugin(self.accelerator.state.fsdp_plugin, self.model)
            self._embeddings_presharded = shard_shared_embeddings(self.model, self.accelerator.state.fsdp_plugin)

    def _prepare_for_training(self, *args, **kwargs):
        with embeddings_hidden(self.model) if self._embeddings_presharded else nullcontext():
            return super()._prepare_for_training(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Mean CE over label tokens + CPO, with the LM head applied only at positions whose next
        token is a label, a chunk at a time (``head_ce_and_pivot_columns``): the full fp32
        [batch, seq, vocab] logits and their gradient are never materialised. The forward still goes
        through ``model`` (DDP / PEFT wrappers), with its head returning the kept hidden states."""
        labels = inputs["labels"]
        keep = F.pad(labels[:, 1:] != -100, (0, 1), value=False)  # position t predicts labels[t + 1]
        targets = labels[:, 1:][keep[:, :-1]]
        feed = {k: v for k, v in inputs.items() if k != "labels"}
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        if self._head_is_last_op:
            with _returning_input(head):
                hidden = model(**feed, logits_to_keep=keep).logits  # [n, hidden]
        else:  # the model transforms logits after its head: let it apply the head (kept positions only)
            hidden, head = model(**feed, logits_to_keep=keep).logits, None
        head = None if head is None else token_rows_head(head)
        ce_sum, z = head_ce_and_pivot_columns(hidden, targets, self.pivots, head, self.head_rows)
        ce = ce_sum / max(len(targets), 1)
        hit, cls = pivot_targets(targets, self.pivots)
        st = stats_from_columns(z[hit], cls, self.cpo_rethink, self.cpo_reduction)
        if model.training and self.accelerator.num_processes > 1:
            loss = self._data_parallel_loss(ce_sum, len(targets), z[hit], cls)
        else:
            loss = ce + self.cpo_weight * st.cpo if self.cpo else ce
        if model.training:
            a = self._acc
            a["ce"] += float(ce.detach())
            a["cpo"] += float(st.cpo.detach())
            a["n"] += 1
            a["piv"] += st.n_pivots
            a["ok"] += st.n_correct
        return (loss, {"loss": loss, "pivot_logits": z}) if return_outputs else loss

    def _data_parallel_loss(self, ce_sum: torch.Tensor, n_targets: int, z: torch.Tensor,
                            cls: torch.Tensor) -> torch.Tensor:
        """This process's share of the global batch's loss: the sums divided by the label-token and
        pivot counts over all processes, times the process count (DDP and FSDP average gradients).
        The processes' gradients then average to the one-process gradient of the global batch, whatever
        the length and pivot mix of each process's batch (per-process means would weight a token by
        its batch's size)."""
        local = [n_targets] + [int((cls == c).sum()) for c in range(3)]
        total = global_counts(self.accelerator, torch.tensor(local, device=z.device)).tolist()
        world = self.accelerator.num_processes
        loss = ce_sum * (world / max(total[0], 1))
        if self.cpo:
            counts = total[1:4] if self.cpo_rethink else total[1:3]
            cpo, _ = cpo_loss(z, cls, self.cpo_rethink, self.cpo_reduction, counts=counts)
            loss = loss + self.cpo_weight * world * cpo
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        a = self._acc
        if "loss" in logs and a["n"]:
            logs["ce_loss"] = round(a["ce"] / a["n"], 4)
            logs["cpo_loss"] = round(a["cpo"] / a["n"], 4)
            if a["piv"]:
                logs["pivot_acc"] = round(a["ok"] / a["piv"], 4)
            self._acc = {"ce": 0.0, "cpo": 0.0, "n": 0, "piv": 0, "ok": 0}
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset=None):
        """Length-grouped batches (less padding on CPU) in an order fixed by (seed, epoch), so a
        resumed run sees exactly the batches the uninterrupted run would have seen."""
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(ds, "items"):
            return super()._get_train_sampler(train_dataset)
        lengths = [len(x["input_ids"]) for x in ds.items]
        return EpochSeededLengthSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths, seed=self.args.seed)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """PEFT checkpoints without the full (resized) embedding matrices: the base is rebuilt on
        resume and the new-token rows live in the adapter's trainable-token deltas. ``state_dict``
        (FSDP: gathered on rank 0) is the source of the adapter weights when given."""
        from peft import PeftModel

        model = self.accelerator.unwrap_model(self.model)
        if not isinstance(model, PeftModel):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            # under FSDP the Trainer gathers the full state dict (its parameters are shards)
            model.save_pretrained(output_dir, save_embedding_layers=False, state_dict=state_dict)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))


def wrap_model(model, cfg: TrainConfig, ids: list[int]):
    """LoRA + trainable new-token rows, new rows only, or full fine-tuning (model returned as is)."""
    from peft import LoraConfig, TrainableTokensConfig, get_peft_model

    if cfg.mode == "full":
        return model
    tied = is_tied(model)
    emb = [n for n, m in model.named_modules() if m is model.get_input_embeddings()][0].split(".")[-1]
    head = [n for n, m in model.named_modules() if m is model.get_output_embeddings()][0].split(".")[-1]
    if cfg.mode == "rows":
        pc = TrainableTokensConfig(token_indices=ids, target_modules=[emb] if tied else [emb, head])
    else:
        pc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM",
                        trainable_token_indices={emb: ids} if tied else {emb: ids, head: ids})
    return get_peft_model(model, pc)


def _use_bf16(cfg: TrainConfig) -> bool:
    if cfg.dtype == "bfloat16":
        return True
    return cfg.dtype == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def training_args(cfg: TrainConfig, **over) -> TrainingArguments:
    kw = dict(
        output_dir=cfg.output, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, logging_steps=cfg.logging_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        seed=cfg.seed, bf16=_use_bf16(cfg), report_to=cfg.report_to, remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        dataloader_num_workers=0,
        disable_tqdm=False, logging_first_step=True,
        **device_args(),
    )
    if cfg.gradient_checkpointing:
        kw["activation_checkpointing"] = True
        kw["activation_checkpointing_kwargs"] = {"every_n_layers": cfg.gradient_checkpointing_every}
    kw.update(over)
    return TrainingArguments(**kw)


def data_hashes(source: str) -> dict:
    from r2d.provenance import sha256_file

    p = Path(source)
    return {"path": str(p.resolve()), "sha256": sha256_file(p)} if p.is_file() else {"hub_id": source}


@torch.no_grad()
def pivot_accuracy(model, dataset, pivots: tuple[int, int, int], batch_size: int = 8, pad_id: int = 0) -> float:
    """Share of pivot positions where argmax over the 3 pivot columns equals the target."""
    from r2d.training.collate import PadCollator

    collate, ok, n = PadCollator(pad_id), 0, 0
    was_training = model.training
    model.eval()
    for i in range(0, len(dataset), batch_size):
        batch = collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        st = pivot_stats(model(**batch).logits, batch["labels"], pivots)
        ok, n = ok + st.n_correct, n + st.n_pivots
    model.train(was_training)
    return ok / n if n else float("nan")


def gathered_model(trainer: R2DTrainer, cfg: TrainConfig, ids: list[int]):
    """Under FSDP: the trained model as one plain (unsharded) module on rank 0, None elsewhere, so the
    usual adapter / merged saving runs on it unchanged. Every rank must call it (the full state dict
    is gathered); rank 0 rebuilds the model as ``train`` built it and loads that state dict."""
    from r2d.models import load_model

    state = trainer.accelerator.get_state_dict(trainer.model)
    if not trainer.is_world_process_zero():
        return None
    model, _ = load_model(cfg.model, dtype="float32", device=None, expand=True)
    model = wrap_model(model, cfg, ids)
    model.load_state_dict(state, strict=True)
    return model.eval()


def train(cfg: TrainConfig, callbacks: list | None = None) -> R2DTrainer:
    """Run (or resume) a training job described by ``cfg``; returns the finished trainer."""
    from r2d.config import save_config
    from r2d.data.io import load_sward
    from r2d.models import load_model, resolve_model
    from r2d.provenance import base_provenance
    from r2d.training.collate import PadCollator, SwardDataset
    from r2d.training.outdir import claim_output_dir
    from r2d.training.saving import save_adapter, save_merged

    if not cfg.data:
        raise ValueError("no training data: pass --data FILE or set data: in the config")
    if not cfg.output:
        raise ValueError("no output directory: pass --output DIR or set output: in the config")
    rows = load_sward(cfg.data)
    claim_output_dir(cfg, data_hashes(cfg.data), main_process=int(os.environ.get("RANK", "0")) == 0)
    set_seed(cfg.seed)  # LoRA init and resized rows do not depend on what ran before in the process
    model, tok = load_model(cfg.model, dtype="float32", device=None, expand=True)  # fp32 master weights; Trainer places them and autocasts
    if cfg.think_in_prompt:
        from r2d.pivots import open_think_in_template

        open_think_in_template(tok)
    ids = list(pivot_ids(tok).all)
    dataset = SwardDataset(rows, tok, cfg.max_seq_len, strip=cfg.strip_pivots, source=cfg.data,
                           no_reasoning=cfg.no_reasoning)
    tied = is_tied(model)
    model = wrap_model(model, cfg, ids)
    model.train()
    out = Path(cfg.output)
    args = training_args(cfg)
    trainer = R2DTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                         data_collator=PadCollator(tok.pad_token_id), pivots=pivot_ids(tok).pivots,
                         cpo=cfg.cpo, cpo_weight=cfg.cpo_weight, cpo_rethink=cfg.cpo_rethink,
                         cpo_reduction=cfg.cpo_reduction,
                         callbacks=callbacks)
    last = get_last_checkpoint(str(out)) if cfg.resume and out.is_dir() else None
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / CONFIG_FILE)
    result = trainer.train(resume_from_checkpoint=last)
    final = gathered_model(trainer, cfg, ids) if trainer.is_fsdp_enabled else None  # collective under FSDP
    if trainer.is_world_process_zero():
        final = trainer.accelerator.unwrap_model(trainer.model) if final is None else final
        if cfg.save_kind == "adapter":
            save_adapter(final, tok, out, cfg.model, ids, cfg.mode, tied, reasoning=not cfg.no_reasoning)
        else:
            save_merged(final, tok, out)
        meta = {**base_provenance(), "model": cfg.model, "model_path": resolve_model(cfg.model),
                "data": data_hashes(cfg.data), "n_examples": len(dataset), "n_tokens": dataset.n_tokens,
                "n_label_tokens": sum(sum(x != -100 for x in e["labels"]) for e in dataset.items),
                "pivot_token_ids": pivot_ids(tok).by_string(), "reasoning": not cfg.no_reasoning,
                "cpo": cfg.cpo, "cpo_reduction": cfg.cpo_reduction if cfg.cpo else None,
                "template_opens_think": template_opens_think(tok), "resumed_from": last, "save": cfg.save_kind,
                "metrics": result.metrics, "log_history": trainer.state.log_history}
        (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return trainer
