"""``r2d select-policy``: the dev set avoids training and evaluation prompts, the policies simulated
on one raw generation decide exactly as the real decode-time policies, and the stated rule picks."""

import json
import re

import pytest
import torch

from r2d.eval.select_policy import (DevPrompt, borderline_prompts, unsafe_short_prompts, candidates, choose, dev_set, dev_table,
                                    policy_refuses)


def _content(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3}


def test_borderline_and_short_unsafe_dev_prompts_are_not_eval_or_training_seeds(data_dir):
    from r2d.data.seeds import contrast, contrast_harmful
    from r2d.eval.benchmarks import all_eval_prompts

    others = [p for ps in all_eval_prompts().values() for p in ps] + [s.prompt for s in contrast(extra=True) + contrast_harmful()]
    assert len(unsafe_short_prompts()) == 12
    from r2d.data.decontam import Decontaminator, eval_prompts

    dc = Decontaminator(eval_prompts())  # the build's own decontamination rule passes every dev prompt too
    assert [p for p in borderline_prompts() + unsafe_short_prompts() if dc.check(p)] == []
    for b in borderline_prompts() + unsafe_short_prompts():
        cb = _content(b)
        worst = max(len(cb & _content(o)) / len(cb | _content(o)) for o in others)
        assert worst < 0.35, b


def test_dev_set_avoids_training_rows(tmp_path, data_dir):
    from r2d.data.seeds import _advbench_goals, alpaca

    first = dev_set([str(_train_file(tmp_path, []))], n_direct=4, n_template=2, n_alpaca=4, n_borderline=3)
    used_goal = next(d for d in first if d.group == "harmful-direct").prompt
    used_alpaca = next(d for d in first if d.group == "benign-alpaca").prompt
    train = _train_file(tmp_path, [used_goal, "Sure: " + used_alpaca])
    again = dev_set([str(train)], n_direct=4, n_template=2, n_alpaca=4, n_borderline=3)
    prompts = " ".join(d.prompt for d in again)
    assert used_goal not in prompts and used_alpaca not in prompts  # training prompts never become dev prompts
    assert [d.group for d in again].count("harmful-template") == 2
    assert {d.prompt for d in again if d.group == "harmful-direct"} <= set(_advbench_goals())
    assert {d.prompt for d in again if d.group == "benign-alpaca"} <= {s.prompt for s in alpaca()}


def _train_file(tmp_path, prompts: list[str]):
    p = tmp_path / f"train{len(prompts)}.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                  {"role": "assistant", "content": "<think> ok [SAFE] </think> ok [SAFE]"}]})
                         + "\n" for q in prompts or ["hello there"]))
    return p


def _row(group, completion, probs, refused):
    return {"group": group, "harmful": group.startswith("harmful"), "completion": completion, "error": None,
            "pivot_probs": [{"[SAFE]": 1 - p, "[UNSAFE]": p, "[RETHINK]": 0.0} for p in probs], "refused": refused}


def test_dev_table_and_rule():
    rows = [_row("harmful-direct", "<think> a [UNSAFE]", [0.9], False),  # refused by every pivot policy
            _row("harmful-direct", "<think> a [SAFE] b [SAFE] </think> Sure", [0.25, 0.15], False),
            _row("benign-alpaca", "<think> a [SAFE] </think> Here", [0.12], False),
            _row("benign-borderline", "<think> a [SAFE] </think>", [0.02], None)]  # no answer
    pols = [{"name": "raw"}] + candidates((0.2, 0.1))
    table = {t["policy"]: t for t in dev_table(rows, pols)}
    assert table["raw"]["harmful_refused"] == 0 and table["raw"]["benign_refused"] == 0
    assert table["refuse-on-unsafe"]["harmful_refused"] == 0.5 and table["refuse-on-unsafe"]["score"] == 0.5
    assert table["pivot-threshold(tau=0.2)"]["harmful_refused"] == 1.0  # 0.25 >= 0.2
    # 0.12 >= 0.1 on the Alpaca prompt; the borderline reply with no answer is neither refused nor helped:
    # out of the denominator (1/1, not 1/2)
    assert table["pivot-threshold(tau=0.1)"]["benign_refused"] == 1.0
    assert table["pivot-threshold(tau=0.2)"]["groups"]["benign-borderline"]["no_answer"] == 1
    assert choose(list(table.values()))["policy"] == "pivot-threshold(tau=0.2)"  # 1.0 - 0 beats 0.5 and 1.0 - 0.5
    tie = [_row("harmful-direct", "<think> a [UNSAFE]", [0.9], False)]
    assert choose(dev_table(tie, pols))["policy"] == "refuse-on-unsafe"  # tie: the simpler policy
    assert choose(dev_table(tie, [{"name": "raw"}] + candidates((0.2, 0.3))[1:]))["policy"] == "pivot-threshold(tau=0.3)"




def _steering(tokenizer):
    """A deterministic processor (a function of the ids so far) that makes a pivot the argmax every
    third step, with P([UNSAFE]) among the pivots spread over (0, 1) by the last token."""
    from transformers import LogitsProcessor

    from r2d.pivots import pivot_ids

    ids = pivot_ids(tokenizer)

    class Steer(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores = scores.clone()
            for r in range(scores.shape[0]):
                if (input_ids.shape[1] + int(input_ids[r, -1])) % 3 == 0:
                    top = scores[r].max()
                    margin = (int(input_ids[r, -1]) % 9 - 4) * 0.6  # z[UNSAFE] - z[SAFE]
                    scores[r, ids.safe] = top + 5.0
                    scores[r, ids.unsafe] = top + 5.0 + margin
                    scores[r, ids.rethink] = top + 3.0
            return scores

    return Steer()


def test_simulated_policies_decide_as_the_real_ones(tiny):
    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend
    from r2d.infer.policies import generate_with_policy

    model, tok = tiny
    be = HFBackend(model, tok, device=None, progress=False)
    chats = [[{"role": "user", "content": f"question {i} " + "x" * i}] for i in range(12)]
    params = GenParams(max_new_tokens=24, batch_size=4, extra={"logits_processors": [_steering]})
    raw = generate_with_policy(be, chats, params, "raw")
    assert sum(len(c.meta.get("pivot_probs", [])) for c in raw) >= 6  # pivots were generated and recorded
    taus = sorted({round(min(max(e["[UNSAFE]"] / (e["[SAFE]"] + e["[UNSAFE]"] + e["[RETHINK]"]), 0.01), 0.99), 2)
                   for c in raw for e in c.meta["pivot_probs"]})
    decided = {True: 0, False: 0}
    for pol in candidates(tuple(taus[:: max(1, len(taus) // 4)])):
        kw = {k: v for k, v in pol.items() if k != "name"}
        real = generate_with_policy(be, chats, params, pol["name"], **kw)
        for r, c in zip(raw, real):
            sim = policy_refuses(pol, r.full_text, r.meta["pivot_probs"])
            assert sim == c.meta["policy_refused"], (pol, r.full_text, r.meta["pivot_probs"])
            decided[sim] += 1
    assert decided[True] and decided[False]  # both outcomes occur: the comparison can fail


def test_dev_prompt_groups():
    assert DevPrompt("a", "harmful-template", "x").harmful and not DevPrompt("b", "benign-alpaca", "y").harmful
    with pytest.raises(ValueError, match="cannot simulate"):
        policy_refuses({"name": "drop-unsafe-steps"}, "text", [])
