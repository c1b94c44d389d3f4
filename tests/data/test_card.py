"""The dataset card: what wrote each row, the pivot-sequence distribution per label, lengths per label."""

from collections import Counter

from r2d.data.card import card_stats, pivot_sequence, render_card, render_sequences


def _row(label, steps, answer="Sure, here it is.", teacher="dataset", src="star1 trace"):
    think = "\n\n".join(f"{t} {p}" for t, p in steps)
    return {"messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "content": f"<think>\n{think}\n</think>\n\n{answer} [SAFE]"}],
            "label": label, "source": "x", "meta": {"teacher": teacher, "reasoning_source": src}}


def test_card_prints_pivot_sequences_teachers_and_lengths_per_label():
    rows = [_row("harmful", [("one two three", "[RETHINK]"), ("four five", "[UNSAFE]"), ("six", "[SAFE]")]),
            _row("harmful", [("one two three", "[RETHINK]"), ("four five", "[UNSAFE]"), ("six", "[SAFE]")]),
            _row("harmful", [("a b", "[SAFE]"), ("c d e f", "[UNSAFE]")]),
            _row("benign", [("w " * 10, "[SAFE]"), ("w " * 20, "[SAFE]")], answer="a b c d", teacher="composer",
                 src="r2d composer")]
    s = card_stats(rows)
    assert s["pivot_sequences"]["harmful"] == Counter({"R-U-S": 2, "S-U": 1})
    assert s["by_label"]["benign"]["reasoning_words"] == [30] and s["by_label"]["harmful"]["steps"] == [3, 3, 2]
    assert s["teachers"][("dataset", "star1 trace")] == 3 and s["teachers"][("composer", "r2d composer")] == 1
    card = render_card(rows)
    assert "| harmful | 3 | 2 | 0.67 | R-U-S (2), S-U (1) |" in card
    assert "| benign | 1 | 1 | 1.00 | S-S (1) |" in card
    assert "| dataset | star1 trace | 3 |" in card and "| composer | r2d composer | 1 |" in card
    assert "| benign | 1 | mean 2.0, median 2, min 2, max 2 | mean 30.0, median 30, min 30, max 30 | mean 4.0" in card
    assert pivot_sequence([]) == "(none)"
    assert render_sequences({"x": Counter({"S": 3, "U": 1})})[-1] == "| x | 4 | 2 | 0.75 | S (3), U (1) |"
