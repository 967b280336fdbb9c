"""Multi-objective preference data: the `dimensions` block, and training on one objective or a weighted mix.

A row may carry per-reply scores on several dimensions, in the common form (what `python -m dpo_exp.label`
exports, and what any layout can hold as an extra field, which `python -m dpo_exp.convert` keeps):

    {"prompt": ..., "chosen": ..., "rejected": ...,
     "dimensions": {"helpfulness": {"chosen": 5, "rejected": 3}, "safety": {"chosen": 2, "rejected": 4}}}

`data.dimension_weights={safety: 1}` trains on one objective, `{accuracy: 2, helpfulness: 1}` on a weighted
mix: each pair's weighted scores decide which reply is chosen (the row's own chosen/rejected are swapped
when the weighted score says so), and a pair whose weighted scores tie is dropped and counted. A row
without a score a weight needs is a malformed row (the file and line named; data.on_error=skip skips
and counts it). `data.where` filters on a score with a dotted key:
`'data.where={dimensions.safety.chosen: [4, 5]}'`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from dpo_exp.config import UserError
from dpo_exp.config import check_dimension_weights as check_weights
from dpo_exp.data.formats import Raw, type_name

# Keys swapped with chosen/rejected when the weights reverse a pair (ultrafeedback's scores follow their reply).
SIDE_KEYS = (("chosen", "rejected"), ("score_chosen", "score_rejected"))


@dataclass
class Weighed:
    kept: int = 0
    swapped: int = 0
    tied: int = 0  # dropped: the weighted scores are equal
    missing: int = 0  # skipped (data.on_error=skip): a score a weight needs is absent
    problems: Counter = field(default_factory=Counter)

    def describe(self, weights: Mapping[str, float]) -> str:
        shown = "{" + ", ".join(f"{k}: {v}" for k, v in weights.items()) + "}"
        text = f"data.dimension_weights {shown}: {self.swapped} pairs swapped, {self.tied} ties dropped"
        return text + (f", {self.missing} rows without the scores skipped" if self.missing else "")


def score(dims: Any, weights: Mapping[str, float], side: str) -> float:
    """The weighted score of one side; raises KeyError/TypeError/ValueError naming what is missing."""
    if not isinstance(dims, Mapping):
        raise ValueError(f"'dimensions' is {type_name(dims)}, not an object of per-dimension scores"
                         if dims is not None else "the row has no 'dimensions' block")
    total = 0.0
    for name, w in weights.items():
        if not w:
            continue
        sides = dims.get(name)
        value = sides.get(side) if isinstance(sides, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"'dimensions' has no numeric {name}.{side} score")
        total += w * value
    return total


def weigh(raw: list[Raw], weights: Mapping[str, float], shown: str, skip: bool) -> tuple[list[Raw], Weighed]:
    """The rows with chosen/rejected decided by the weighted scores; ties dropped. Malformed rows (not an
    object) pass through for the usual row checks to report."""
    weights = check_weights(weights)
    stats, out = Weighed(), []
    for item in raw:
        row = item.value
        if not isinstance(row, dict):
            out.append(item)
            continue
        try:
            chosen, rejected = (score(row.get("dimensions"), weights, side) for side in ("chosen", "rejected"))
        except ValueError as e:
            if skip:
                stats.missing += 1
                continue
            raise UserError(f"Malformed row at {item.where} for data.dimension_weights: {e}. Fix: give every row "
                            "a block like \"dimensions\": {\"helpfulness\": {\"chosen\": 5, \"rejected\": 3}} with "
                            f"the weighted dimensions ({', '.join(k for k, w in weights.items() if w)}), drop the "
                            "weights (data.dimension_weights=null), or set data.on_error=skip to skip such rows "
                            "(they are counted).") from None
        if chosen == rejected:
            stats.tied += 1
            continue
        if chosen < rejected:
            row = dict(row)
            for a, b in SIDE_KEYS:
                if a in row or b in row:
                    row[a], row[b] = row.get(b), row.get(a)
            row["dimensions"] = {name: {("rejected" if s == "chosen" else "chosen" if s == "rejected" else s): v
                                        for s, v in sides.items()} if isinstance(sides, Mapping) else sides
                                 for name, sides in row["dimensions"].items()}
            stats.swapped += 1
            item = Raw(item.where, row)
        stats.kept += 1
        out.append(item)
    if not stats.kept:
        raise UserError(f"data.dimension_weights leaves no pair of {shown}: {stats.tied} tie, {stats.missing} lack "
                        "the scores. Fix: weigh dimensions that tell the replies apart, or drop the weights.")
    return out, stats
