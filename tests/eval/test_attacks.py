import json

import pytest

from r2d import registry
from r2d.eval.attacks import templates as T
from r2d.eval.attacks.artifact import ArtifactAttack
from r2d.eval.benchmarks import JBB, AdvBench
from r2d.eval.types import Behavior


@pytest.fixture
def jbb3(data_dir):
    return JBB().load("harmful", limit=3)


def test_all_attacks_registered():
    assert {"direct", "template", "artifact", "fewshot", "prefill", "autodan", "pair", "gcg"} <= \
        set(registry.names("attack"))


def test_direct_prefill_fewshot(jbb3):
    cases = registry.create("attack", "direct").generate(jbb3)
    assert [c.messages for c in cases] == [[{"role": "user", "content": b.goal}] for b in jbb3]
    assert len({c.id for c in cases}) == 3
    pre = registry.create("attack", "prefill").generate(jbb3)
    assert all(c.messages[-1] == {"role": "assistant", "content": b.target} for c, b in zip(pre, jbb3))
    assert pre[0].messages[0]["content"] == jbb3[0].goal
    few = registry.create("attack", "fewshot", k=2).generate(jbb3)
    assert len(few) == 3
    for c, b in zip(few, jbb3):
        assert [m["role"] for m in c.messages] == ["user", "assistant"] * 2 + ["user"]
        assert c.messages[-1]["content"] == b.goal and c.attack_params["k"] == 2


def test_fewshot_never_uses_evaluated_goal(data_dir):
    adv = AdvBench().load(limit=50)
    cases = registry.create("attack", "fewshot", k=4).generate(adv)
    goals = {b.goal for b in adv}
    assert not any(s in goals for c in cases for s in c.attack_params["shots"])
    again = registry.create("attack", "fewshot", k=4).generate(adv)
    assert [c.messages for c in cases] == [c.messages for c in again]  # deterministic


def test_contextual_behaviour_keeps_context():
    b = Behavior(id="hb-1", goal="Summarise it", benchmark="harmbench", context="CTX {0} text")
    (c,) = registry.create("attack", "direct").generate([b])
    assert c.messages[0]["content"] == "CTX {0} text\n\n---\n\nSummarise it"


def test_template_split_disjoint_deterministic(data_dir):
    train, ev = T.template_split("train"), T.template_split("eval")
    assert not set(train) & set(ev)
    assert sorted(train + ev, key=lambda i: int(i[3:])) == list(T.human_jailbreaks())
    assert 0.5 < len(train) / (len(train) + len(ev)) < 0.8
    assert "hj-0" in ev and "hj-21" in ev  # the AIM templates stay out of training
    assert T.template_split("train") == train
    texts = T.human_jailbreaks()
    assert not {" ".join(texts[i].split()) for i in train} & {" ".join(texts[i].split()) for i in ev}
    with pytest.raises(ValueError):
        T.template_split("test")


def test_fill_uses_replace_not_format():
    assert T.fill("a {x} {0} }{", "GOAL") == "a {x} GOAL }{"
    assert T.fill("Q: [INSERT PROMPT HERE]!", "GOAL") == "Q: GOAL!"
    assert T.fill("no slot", "GOAL") == "no slot\n\nGOAL"
    assert T.fill("T {0}", "GOAL", mode="append") == "T {0}\n\nGOAL"


def test_template_attack(jbb3):
    cases = registry.create("attack", "template", templates=["aim", "jbc-aim", "hj-5"]).generate(jbb3)
    assert len(cases) == 9 and {c.variant for c in cases} == {"aim", "jbc-aim", "hj-5"}
    assert all(c.behavior.goal in c.messages[0]["content"] for c in cases)
    assert all("{0}" not in c.messages[0]["content"] and "[INSERT PROMPT HERE]" not in c.messages[0]["content"]
               for c in cases if c.variant != "hj-5")
    assert "Niccolo" in cases[0].messages[0]["content"]
    ev = registry.create("attack", "template", split="eval").generate(jbb3[:1])
    assert [c.variant for c in ev] == T.template_split("eval")
    with pytest.raises(ValueError, match="unknown template id"):
        registry.create("attack", "template", templates=["nope"]).generate(jbb3)


def test_user_template_file(tmp_path, jbb3):
    f = tmp_path / "t.json"
    f.write_text(json.dumps(["Please {goal} now {braces}", {"id": "mine", "text": "X: {goal}"}]))
    cases = registry.create("attack", "template", templates_file=str(f)).generate(jbb3)
    assert len(cases) == 6 and {c.variant for c in cases} == {"user-0", "mine"}
    assert cases[0].messages[0]["content"] == f"Please {jbb3[0].goal} now {{braces}}"
    f.write_text(json.dumps(["no slot here"]))
    with pytest.raises(ValueError, match=r"t\.json: template 0 has no \{goal\}"):
        registry.create("attack", "template", templates_file=str(f)).generate(jbb3)


def test_artifact_prompts_and_null_artifacts_left_out(data_dir, capsys):
    """A null artifact (the attack found no jailbreak) is reported and left out, never replaced by the
    plain request (which would count a direct attack as PAIR's) (issue 10 §4)."""
    harmful = JBB().load("harmful")
    attack = ArtifactAttack("PAIR", "llama-2-7b-chat-hf")
    cases = attack.generate(harmful)
    raw = json.loads((data_dir / "jbb/artifacts/PAIR/black_box/llama-2-7b-chat-hf.json").read_text())
    null = {e["index"] for e in raw["jailbreaks"] if not e["prompt"]}
    assert len(null) == 96 and len(cases) == 4
    assert all(c.messages[0]["content"] == raw["jailbreaks"][c.behavior.meta["index"]]["prompt"] for c in cases)
    assert all(c.messages[0]["content"] != c.behavior.goal for c in cases)
    p = attack.params()
    assert p["n_null_artifact"] == 96 and len(p["null_artifact_behaviors"]) == 96
    assert "96 of 100 behaviours have a null artifact" in capsys.readouterr().err
    vicuna = ArtifactAttack("PAIR", "vicuna-13b-v1.5")
    assert len(vicuna.generate(harmful)) == 82 and vicuna.params()["n_null_artifact"] == 18
    gcg = registry.create("attack", "artifact", method="GCG").generate(harmful[:2])
    assert gcg[0].variant == "GCG/vicuna-13b-v1.5" and gcg[0].messages[0]["content"].startswith(harmful[0].goal)
    assert registry.create("attack", "artifact", method="JBC").params()["method"] == "JBC"
    with pytest.raises(ValueError, match="has no entry"):
        ArtifactAttack().generate([Behavior(id="z-0", goal="something else", benchmark="z")])
    with pytest.raises(ValueError, match="unknown method"):
        ArtifactAttack("XYZ")
