"""The verdicts and table of ``minillm reproduce``'s report (pure functions, no models)."""

from __future__ import annotations

import statistics

from minillm_distill.reproduce.budgets import BUDGETS, budget
from minillm_distill.reproduce.report import table_lines, verdict


def test_verdict_compares_the_gap_with_both_spreads():
    a, b = [24.0, 26.0], [20.0, 21.0]
    spread = statistics.stdev(a) + statistics.stdev(b)  # 1.414 + 0.707
    assert spread < 25.0 - 20.5 and verdict(a, b) == "higher" and verdict(b, a) == "lower"
    c = [22.0, 23.0]
    assert abs(25.0 - 22.5) > statistics.stdev(a) + statistics.stdev(c)  # 2.5 > 2.12
    assert verdict(a, c) == "higher"
    d = [23.0, 25.0]  # gap 1.0 against 2.83
    assert verdict(a, d) == "within the spread"
    assert verdict([], d) == "not measured"
    assert verdict([30.0], [10.0]) == "one seed: no spread"


def test_table_has_a_row_per_model_and_the_papers_dolly_figures():
    rows = ("teacher", "sft", "minillm")
    labels = {"teacher": "Teacher", "sft": "SFT", "minillm": "MiniLLM"}
    entry = {"n": 100, "rougeL": 21.25, "rougeL_std": 0.5, "rougeL_per_seed": [21.0, 21.5]}
    results = {
        "rows": {
            "teacher": {"dolly": entry},
            "sft": {"dolly": {**entry, "rougeL": 12.0, "exposure_bias": {"final": 33.333}}},
            "minillm": {"dolly": None},
        }
    }
    lines = table_lines(results, rows, labels, ["dolly"])
    assert lines[0] == "| model | dolly (100) | paper, Dolly | ExAccErr % (Dolly) |"
    assert lines[2] == "| Teacher | 21.2 ± 0.5 |  |  |"
    assert lines[3] == "| SFT | 12.0 ± 0.5 | 23.3 | 33.3 |"
    assert lines[4] == "| MiniLLM | - | 24.6 |  |"


def test_budgets_override_and_keep_the_papers_sizes_at_gpu_scale():
    assert budget("cpu", every=3).every == 3 and budget("cpu").every is None
    gpu = BUDGETS["gpu"]
    assert gpu.eval_seeds == (10, 20, 30, 40, 50) and all(v is None for v in gpu.eval_limits.values())
    assert BUDGETS["cpu"].cut_ends == (5, 6)
