"""Multi-objective data (dpo_exp.data.dimensions): the `dimensions` block in every layout, kept by
convert, filtered by data.where, and data.dimension_weights deciding chosen vs rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import compose
from dpo_exp import config
from dpo_exp.config import DataConfig, DataFormat, UserError
from dpo_exp.data import load_splits
from dpo_exp.data.convert import OutConfig, convert

ROWS = [  # helpfulness and safety pull different ways on purpose
    {"prompt": "Q0?", "chosen": "helpful", "rejected": "safe", "dimensions": {
        "helpfulness": {"chosen": 5, "rejected": 2}, "safety": {"chosen": 2, "rejected": 5}}},
    {"prompt": "Q1?", "chosen": "both better", "rejected": "both worse", "dimensions": {
        "helpfulness": {"chosen": 4, "rejected": 3}, "safety": {"chosen": 5, "rejected": 4}}},
    {"prompt": "Q2?", "chosen": "even", "rejected": "steven", "dimensions": {
        "helpfulness": {"chosen": 3, "rejected": 4}, "safety": {"chosen": 4, "rejected": 2}}},
]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs(rows: list[dict]) -> dict[str, tuple[str, str]]:
    return {r["prompt"][-1]["content"]: (r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows}


def load(path: Path, **data) -> tuple[dict, str]:
    s = load_splits(DataConfig(path=str(path), eval_fraction=0, **data), seed=0)
    return pairs(s.train), s.source


def test_weights_decide_chosen_and_drop_ties(tmp_path):
    path = write(tmp_path / "dims.jsonl", ROWS)
    got, _ = load(path)
    assert got == {"Q0?": ("helpful", "safe"), "Q1?": ("both better", "both worse"), "Q2?": ("even", "steven")}

    got, source = load(path, dimension_weights={"safety": 1})  # one objective
    assert got == {"Q0?": ("safe", "helpful"), "Q1?": ("both better", "both worse"), "Q2?": ("even", "steven")}
    assert "data.dimension_weights {safety: 1}: 1 pairs swapped, 0 ties dropped" in source

    # a mix: Q0 2*5+2 = 12 vs 2*2+5 = 9 kept; Q1 8+5 = 13 vs 6+4 = 10 kept; Q2 6+4 = 10 vs 8+2 = 10: a tie, dropped
    got, source = load(path, dimension_weights={"helpfulness": 2, "safety": 1})
    assert got == {"Q0?": ("helpful", "safe"), "Q1?": ("both better", "both worse")}
    assert "0 pairs swapped, 1 ties dropped" in source


def test_every_layout_carries_the_block_and_convert_keeps_it(tmp_path):
    path = write(tmp_path / "dims.jsonl", ROWS)
    for fmt in (DataFormat.sharegpt, DataFormat.ultrafeedback, DataFormat.hh_rlhf, DataFormat.conversational):
        out = tmp_path / f"dims_{fmt.value}.jsonl"
        convert(DataConfig(path=str(path)), OutConfig(path=str(out), format=fmt))
        written = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["dimensions"] for r in written] == [r["dimensions"] for r in ROWS], fmt
        got, _ = load(out, dimension_weights={"safety": 1})  # and the weights work on that layout
        assert got["Q0?"] == ("safe", "helpful"), fmt


def test_where_filters_on_a_score(tmp_path):
    path = write(tmp_path / "dims.jsonl", ROWS)
    got, _ = load(path, where={"dimensions.safety.chosen": [4, 5]})
    assert set(got) == {"Q1?", "Q2?"}
    with pytest.raises(UserError, match=r"data.where filters on 'dimensions.honesty.chosen', but no row"):
        load(path, where={"dimensions.honesty.chosen": 5})


def test_missing_scores_are_malformed_rows(tmp_path):
    path = write(tmp_path / "dims.jsonl", [*ROWS, {"prompt": "Q3?", "chosen": "a", "rejected": "b"}])
    with pytest.raises(UserError, match=r"Malformed row at .*dims.jsonl, line 4 for data.dimension_weights: the row "
                                        r"has no 'dimensions' block. Fix: .*data.on_error=skip"):
        load(path, dimension_weights={"safety": 1})
    s = load_splits(DataConfig(path=str(path), eval_fraction=0, on_error="skip", dimension_weights={"safety": 1}), 0)
    assert s.skipped == 1 and len(s.train) == 3 and "1 rows without the scores skipped" in s.source


@pytest.mark.parametrize("weights, message", [
    ("{safety: -1}", r"data.dimension_weights.safety=-1: a weight is a number >= 0"),
    ("{safety: 0}", r"every weight is 0"),
    ("{safety: high}", r"data.dimension_weights.safety='high'"),
])
def test_bad_weights_are_config_errors(weights, message):
    with pytest.raises(UserError, match=message):
        config.to_object(compose(["data=file", "data.path=x.jsonl", f"data.dimension_weights={weights}"]))
