"""The import graph of src/r2d has no cycle, and every upward import (a lower pipeline layer importing a
higher one) is listed with its reason in scripts/import_graph.py."""

from tests.scripts import load_script


def _load():
    return load_script("scripts/import_graph.py")


def test_no_cycles_and_every_upward_import_has_a_reason():
    ig = _load()
    g = ig.graph()
    assert "r2d.store" in g and "r2d.eval.runner" in g
    assert ig.cycles(g) == []
    assert [u for u in ig.upward(g) if not u["reason"]] == []


def test_detects_a_cycle():
    ig = _load()
    assert ig.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_floor_modules_import_no_stage():
    ig = _load()
    g = ig.graph()
    for floor in ("r2d.store", "r2d.records", "r2d.stats", "r2d.textmatch"):
        assert {t for t in g[floor] if ig.layer(t) > 0} == set(), floor
