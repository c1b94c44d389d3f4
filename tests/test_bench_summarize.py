"""bench/summarize.py renders every shipped result file under bench/results/ (a renamed key in a benchmark's JSON
broke `summarize.py --write` unnoticed: KeyError 'prompts' on the generation section)."""

from tests.scripts import load_script


def test_summarize_renders_the_shipped_results():
    mod = load_script("bench/summarize.py")
    out = mod.render()
    assert "### Generation throughput" in out and "pruned vs generate" in out
    assert "### The evaluation stage, old vs new hf path" in out and "Samples identical" in out


def test_eval_stage_compare_finds_a_changed_sample_and_verdict():
    mod = load_script("bench/eval_stage.py")
    s = {"k1": {"completion": "a", "completion_tokens": 3, "finish_reason": "stop", "error": None},
         "k2": {"completion": "b", "completion_tokens": 5, "finish_reason": "length", "error": None}}
    old = {"samples": s, "verdicts": {("k1", "j"): {"label": "refusal"}, ("k2", "j"): {"label": "compliance"}}}
    new = {"samples": {**s, "k2": {**s["k2"], "completion_tokens": 6}},
           "verdicts": {("k1", "j"): {"label": "refusal"}, ("k2", "j"): {"label": "degenerate"}}}
    same = mod.compare(old, old)
    assert same["samples_identical"] == 2 and same["verdicts_identical"] == 2
    diff = mod.compare(old, new)
    assert diff["mismatched"] == ["k2"] and diff["samples_identical"] == 1 and diff["verdicts_identical"] == 1


def test_summarize_renders_the_decode_roofline():
    out = load_script("bench/summarize.py").render()
    assert "### The decode step against this CPU's limits" in out and "could reach" in out


def test_decode_roofline_counts_every_linear_once_and_the_kv_it_reads(byte_tok):
    from r2d.testing import tiny_model

    mod = load_script("bench/decode_roofline.py")
    for tie in (True, False):
        model = tiny_model(byte_tok, hidden=32, layers=2, tie=tie)
        ws = mod.linears(model)
        # 7 projections a layer (q, k, v, o, gate, up, down) and the LM head once, tied or not
        assert len(ws) == 2 * 7 + 1
        assert sum(w is model.get_output_embeddings().weight for w in ws) == 1
        r = mod.linear_rate(ws, m=3, repeats=1)
        assert r["gflop"] == round(sum(2 * 3 * w.shape[0] * w.shape[1] for w in ws) / 1e9, 2)
    cfg = model.config  # 4 heads on 2 key/value heads of 8 dims, 2 layers
    a = mod.attention(cfg, batch=4, kv=10, repeats=1)
    assert a["kv_mb_read"] == round(2 * 2 * 4 * 2 * 10 * 8 * 4 / 2 ** 20, 1)


def test_decode_roofline_reads_the_prefill_shares(tmp_path):
    import json

    mod = load_script("bench/decode_roofline.py")
    assert mod.generation_share(tmp_path / "missing.json") is None
    p = mod.RESULTS / "prefill.json"
    share = mod.generation_share(p)
    d = json.loads(p.read_text())
    assert share["old_loop_cpu_s"] == d["loop"]["median"]["old"]["cpu_seconds"]
    assert abs(share["decode_cpu_s"] - (share["grouped_loop_cpu_s"] - share["prompt_forward_cpu_s"])) < 0.02


def test_summarize_renders_the_derived_policy_arm():
    out = load_script("bench/summarize.py").render()
    assert "### A policy arm derived from the raw arm" in out and "Policy samples identical" in out
