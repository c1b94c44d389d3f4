"""GCG (Zou et al. 2023): a greedy coordinate-gradient search for an adversarial suffix that makes
the target model begin its reply with the behaviour's target string.

Two implementations: the ``nanogcg`` package (optional extra ``gcg``) and a compact own one (used
when nanogcg is absent, or with ``impl="own"``). The own one: one-hot gradient of the target loss
w.r.t. the suffix tokens, top-k token candidates per position, ``search_width`` random single-token
swaps per step scored in batches, keep the best. Special and added tokens (pivots, ``<think>``) and
non-ASCII tokens are never proposed, and candidates that do not survive decode/re-encode are dropped.
``params()`` says which implementation ran; each TestCase records its loss trajectory. Given the run
directory's ``SearchCache`` (the runner passes one), a suffix found before for the same model, behaviour and
settings is reused instead of searched again (``r2d.eval.attacks.searches``).

The target on an R2D model: the judge reads the answer after ``</think>``, so a suffix that only makes
the reasoning *start* with "Sure, here is" attacks the wrong text. When the chat template opens
``<think>`` (an R2D model, an R1 distill) the loss is computed on ``</think>\n\n`` + the affirmative
target, straight after the opened think block: the suffix must make the model close its reasoning at
once and begin its answer affirmatively (``whitebox.answer_target``; the string is recorded per case as
``loss_target``). A model that holds ``<think>`` tokens without opening them in its template gets
``<think>\n</think>\n\n`` + target. Vanilla models keep the plain target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r2d.backends.base import Backend, Chat, render_prompt
from r2d.eval.attacks.base import OptimizingAttack, make_case, request_text, target_text, user
from r2d.eval.attacks.searches import SearchCache
from r2d.eval.attacks.whitebox import answer_target, model_and_tokenizer
from r2d.eval.types import Behavior, TestCase
from r2d.registry import register

SLOT = "{optim_str}"
# Bump when a change to the search changes its results: suffixes stored by an earlier version are then searched
# again (r2d.eval.attacks.searches).
SEARCH_VERSION = 1


def allowed_token_mask(tok: Any, vocab: int):
    """Bool tensor over the model's vocabulary: printable-ASCII, non-special, non-added tokens."""
    import torch

    banned = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}) or {})
    mask = torch.zeros(vocab, dtype=torch.bool)
    for i in range(min(vocab, len(tok))):
        if i in banned:
            continue
        s = tok.decode([i])
        mask[i] = bool(s.strip()) and s.isascii() and s.isprintable()
    return mask


@dataclass
class SearchPrompt:
    """One prompt of a token search, as ids: ``before`` + suffix + ``after`` + ``target``; the loss is
    the mean cross-entropy of ``target`` (teacher-forced) given everything before it."""

    before: list[int]
    after: list[int]
    target: list[int]


def search_prompt(tok: Any, chat_with_slot: Chat, target: str) -> SearchPrompt:
    """Split the rendered ``chat_with_slot`` (one turn holds ``{optim_str}``) around the slot."""
    text = render_prompt(tok, chat_with_slot)
    if text.count(SLOT) != 1:
        raise ValueError(f"token search: the rendered chat must hold {SLOT} exactly once")
    before, after = text.split(SLOT, 1)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    t_ids = enc(target)
    if not t_ids:
        raise ValueError(f"token search: target {target!r} tokenizes to nothing")
    return SearchPrompt(enc(before), enc(after), t_ids)


def gcg_prompt(tok: Any, request: str, target: str) -> SearchPrompt:
    """GCG's prompt: ``request + suffix`` as the user turn; the loss is on ``answer_target(target)``, so
    on an R2D model it is computed on ``</think>`` and the affirmative answer after it."""
    return search_prompt(tok, user(f"{request}{SLOT}"), answer_target(tok, target))


def token_search(model: Any, tok: Any, prompts: list[SearchPrompt], suffix_len: int, steps: int,
                 search_width: int, topk: int, seed: int, batch_size: int = 16, allowed: Any = None,
                 init: str = " !", on_step: Any = None, state: dict | None = None, on_state: Any = None) -> dict:
    """Greedy coordinate-gradient search (Zou et al. 2023) for a ``suffix_len``-token string that
    minimises the mean target loss over ``prompts`` (one prompt: GCG; many: a universal suffix, as RPO
    optimises its defensive suffix). Each step: one-hot gradient of the loss w.r.t. the suffix tokens,
    top-k allowed tokens per position, ``search_width`` random single-token swaps scored exactly, keep
    the best. Candidates that do not survive decode/re-encode are dropped. Returns the best suffix
    (decoded), its loss, the per-step loss trajectory and the suffix ids. ``on_step(step, loss, best)``
    is called after each step (progress for long searches). ``on_state(state)`` gets, after each step, the
    search state (current and best ids, best loss, trajectory, random-generator state): passed back as
    ``state``, the search continues from it as if never interrupted (the trajectory counts toward ``steps``)."""
    import torch
    import torch.nn.functional as F

    if not prompts:
        raise ValueError("token search: no prompts")
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    embed = model.get_input_embeddings()
    vocab = embed.weight.shape[0]
    allowed = (allowed if allowed is not None else allowed_token_mask(tok, vocab)).to(device)
    suffix = enc(init * suffix_len)[:suffix_len]
    suffix = suffix + suffix[-1:] * (suffix_len - len(suffix))
    fixed = lambda ids: torch.tensor(ids, device=device, dtype=torch.long)  # noqa: E731
    parts = [(fixed(p.before), fixed(p.after), fixed(p.target)) for p in prompts]

    def losses(cands: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(cands), device=device)
        for b_t, a_t, t_t in parts:
            keep = len(t_t) + 1  # logits only where the target is predicted (plus the last, dropped)
            out = []
            for i in range(0, len(cands), batch_size):
                c = cands[i:i + batch_size]
                n = len(c)
                ids = torch.cat([b_t.expand(n, -1), c, a_t.expand(n, -1), t_t.expand(n, -1)], 1)
                with torch.no_grad():
                    logits = model(input_ids=ids, logits_to_keep=keep).logits[:, :-1].float()
                out.append(F.cross_entropy(logits.transpose(1, 2), t_t.expand(n, -1), reduction="none").mean(1))
            total += torch.cat(out)
        return total / len(parts)

    def snapshot() -> dict:
        return {"cur": cur.tolist(), "best_ids": best_ids.tolist(), "best_loss": best_loss,
                "losses": list(trajectory), "rng": gen.get_state().tolist()}

    if state is not None:
        cur, best_ids = fixed(state["cur"]), fixed(state["best_ids"])
        best_loss, trajectory = float(state["best_loss"]), [float(x) for x in state["losses"]]
        gen.set_state(torch.tensor(state["rng"], dtype=torch.uint8))
        if len(cur) != suffix_len or not trajectory:
            raise ValueError(f"token search: saved state has a {len(cur)}-token suffix, asked for {suffix_len}")
    else:
        cur = fixed(suffix)
        best_ids, best_loss, trajectory = cur.clone(), float(losses(cur[None])[0]), []
        trajectory.append(best_loss)
        if on_step is not None:
            on_step(0, best_loss, best_loss)
        if on_state is not None:
            on_state(snapshot())
    for _ in range(max(0, steps - (len(trajectory) - 1))):
        onehot = F.one_hot(cur, vocab).to(embed.weight.dtype).requires_grad_(True)
        grad = torch.zeros_like(onehot)
        with torch.enable_grad():
            for b_t, a_t, t_t in parts:
                emb = torch.cat([embed(b_t), onehot @ embed.weight, embed(a_t), embed(t_t)])[None]
                logits = model(inputs_embeds=emb, logits_to_keep=len(t_t) + 1).logits[0, :-1].float()
                loss = F.cross_entropy(logits, t_t) / len(parts)
                grad += torch.autograd.grad(loss, [onehot])[0]
        grad = grad.masked_fill(~allowed[None], float("inf"))
        top = (-grad).topk(min(topk, int(allowed.sum())), dim=1).indices  # suffix_len x k
        pos = torch.randint(0, suffix_len, (search_width,), generator=gen).to(device)
        pick = torch.randint(0, top.shape[1], (search_width,), generator=gen).to(device)
        cands = cur.expand(search_width, -1).clone()
        cands[torch.arange(search_width, device=device), pos] = top[pos, pick]
        ok = [i for i, c in enumerate(cands.tolist()) if enc(tok.decode(c)) == c]
        if not ok:
            trajectory.append(trajectory[-1])
        else:
            cands = cands[ok]
            cl = losses(cands)
            j = int(cl.argmin())
            cur = cands[j]
            trajectory.append(float(cl[j]))
            if float(cl[j]) < best_loss:
                best_loss, best_ids = float(cl[j]), cur.clone()
        if on_step is not None:
            on_step(len(trajectory) - 1, trajectory[-1], best_loss)
        if on_state is not None:
            on_state(snapshot())
    return {"suffix": tok.decode(best_ids.tolist()), "loss": best_loss, "losses": trajectory,
            "suffix_ids": best_ids.tolist()}


def own_gcg(model: Any, tok: Any, request: str, target: str, steps: int, search_width: int, topk: int,
            suffix_len: int, seed: int, batch_size: int = 16, allowed: Any = None) -> dict:
    """Run GCG on one behaviour; returns the best suffix (with its leading space; the prompt is
    ``request + suffix``), best loss and the per-step loss trajectory."""
    r = token_search(model, tok, [gcg_prompt(tok, request, target)], suffix_len, steps, search_width, topk, seed,
                     batch_size, allowed)
    r.pop("suffix_ids")
    return r


def nanogcg_run(model: Any, tok: Any, request: str, target: str, steps: int, search_width: int, topk: int,
                suffix_len: int, seed: int, allowed: Any = None) -> dict:
    import nanogcg

    cfg = nanogcg.GCGConfig(num_steps=steps, search_width=search_width, topk=topk, seed=seed,
                            optim_str_init=" ".join(["x"] * suffix_len), verbosity="WARNING",
                            use_prefix_cache=False)  # its prefix cache breaks under transformers 5
    import torch

    gcg = nanogcg.gcg.GCG(model, tok, cfg)
    # nanogcg only bans non-ASCII/special tokens; also ban added tokens (pivots, <think>) as the own one does
    if allowed is None:
        allowed = allowed_token_mask(tok, model.get_input_embeddings().weight.shape[0])
    gcg.not_allowed_ids = (~allowed).nonzero().squeeze(1).to(model.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        res = gcg.run([{"role": "user", "content": f"{request} {SLOT}"}], answer_target(tok, target))
    finally:  # nanogcg switches deterministic algorithms on for the whole process when seeded
        torch.use_deterministic_algorithms(was_deterministic)
    return {"suffix": " " + res.best_string, "loss": float(res.best_loss), "losses": [float(x) for x in res.losses]}


def nanogcg_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanogcg")
    except PackageNotFoundError:
        return None


def nanogcg_available() -> bool:
    try:
        import nanogcg  # noqa: F401
    except ImportError:
        return False
    return True


@register("attack", "gcg")
class GCG(OptimizingAttack):
    """One TestCase per behaviour: the request followed by the best suffix found."""

    name = "gcg"
    caches_searches = True

    def __init__(self, steps: int = 20, search_width: int = 64, topk: int = 64, suffix_len: int = 10,
                 impl: str = "auto", transfer: Backend | str | None = None, seed: int = 0) -> None:
        super().__init__(transfer, seed)
        if impl not in ("auto", "own", "nanogcg"):
            raise ValueError(f"attack gcg: impl must be auto, own or nanogcg, got {impl!r}")
        if impl == "nanogcg" and not nanogcg_available():
            raise ValueError("attack gcg: impl=nanogcg but nanogcg is not installed (pip install 'r2d[gcg]')")
        self.steps, self.search_width, self.topk, self.suffix_len = steps, search_width, topk, suffix_len
        self.impl = impl
        self.used: str | None = None
        self.fallback_reason: str | None = None
        self.mode: str | None = None

    def _run(self, model: Any, tok: Any, request: str, target: str, seed: int, allowed: Any) -> dict:
        args = (model, tok, request, target, self.steps, self.search_width, self.topk, self.suffix_len, seed)
        if self.impl == "own" or (self.impl == "auto" and not nanogcg_available()):
            self.used = "own"
            return own_gcg(*args, allowed=allowed)
        try:
            r = nanogcg_run(*args, allowed=allowed)
            self.used = "nanogcg"
            return r
        except Exception as e:  # nanogcg pins older transformers internals; fall back in auto mode
            if self.impl == "nanogcg":
                raise
            self.used, self.fallback_reason = "own", f"nanogcg failed: {type(e).__name__}: {e}"[:300]
            return own_gcg(*args, allowed=allowed)

    def search_key(self, b: Behavior, seed: int) -> dict:
        """Everything besides the target model that changes one behaviour's search (``r2d.eval.attacks.searches``)."""
        key = {"attack": self.name, "version": SEARCH_VERSION, "steps": self.steps, "search_width": self.search_width,
               "topk": self.topk, "suffix_len": self.suffix_len, "impl": self.impl, "seed": seed,
               "request": request_text(b), "target": target_text(b)}
        if self.impl != "own":  # which implementation runs (and so the suffix) depends on nanogcg's presence
            key["nanogcg"] = nanogcg_version()
        return key

    def generate(self, behaviors: list[Behavior], target: Backend | None = None,
                 searches: SearchCache | None = None) -> list[TestCase]:
        """One case per behaviour; with ``searches`` (the run directory's cache) a behaviour searched before
        under the same key is not searched again, and the target model is not even loaded when none is new."""
        if self.transfer is None and target is None:
            self.search_target(target)  # raises: needs a target or a transfer model
        self.mode = "transfer" if self.transfer is not None else "adaptive"
        cache = self.search_cache(searches)
        keys = [self.search_key(b, self.seed + n) for n, b in enumerate(behaviors)]
        found: dict[int, dict] = {}
        for n, key in enumerate(keys):
            r = cache.get(key) if cache is not None else None
            if r is not None:
                found[n] = {**r, "search": "reused"}
        if len(found) < len(behaviors):
            backend, self.mode = self.search_target(target)
            model, tok = model_and_tokenizer(backend)
            allowed = allowed_token_mask(tok, model.get_input_embeddings().weight.shape[0])
            on = self.transfer_name() or getattr(backend, "model_name", backend.name)
            for n, b in enumerate(behaviors):
                if n in found:
                    continue
                r = self._run(model, tok, request_text(b), target_text(b), self.seed + n, allowed)
                r = {**r, "impl": self.used, "nanogcg_fallback_reason": self.fallback_reason,
                     "loss_target": answer_target(tok, target_text(b)), "optimized_on": on}
                if cache is not None:
                    cache.put(keys[n], r, attack=self.name, behavior_id=b.id, mode=self.mode)
                found[n] = {**r, "search": "searched"}
        else:  # every suffix reused: what params() reports comes from the stored searches
            self.used = next((r["impl"] for r in found.values()), self.used)
            self.fallback_reason = next((r.get("nanogcg_fallback_reason") for r in found.values()
                                         if r.get("nanogcg_fallback_reason")), None)
        out = []
        for n, b in enumerate(behaviors):
            r = found[n]
            out.append(make_case(b, self.name, user(request_text(b) + r["suffix"]), mode=self.mode, impl=r["impl"],
                                 suffix=r["suffix"], best_loss=r["loss"], losses=r["losses"],
                                 loss_target=r["loss_target"], optimized_on=r["optimized_on"], search=r["search"]))
        return out

    def params(self) -> dict:
        return {"attack": self.name, "steps": self.steps, "search_width": self.search_width, "topk": self.topk,
                "suffix_len": self.suffix_len, "impl": self.impl, "impl_used": self.used,
                "nanogcg_fallback_reason": self.fallback_reason, "mode": self.mode,
                "transfer": self.transfer_name(), "seed": self.seed}
