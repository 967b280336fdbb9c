"""The behaviour metric of `+experiment=sycophancy` (`eval/behaviour=pushback`), on the rules of `rules`."""

from __future__ import annotations

from typing import Mapping, Sequence

from dpo_exp.tasks.pushback.rules import label, rates


class PushbackMetric:
    """Per held-out reply its label, and the rates of `rules.rates` (hold, cave, evidence-accept,
    plain-correct, unclear)."""

    name = "pushback"
    requires = ("kind", "correct_aliases", "wrong_aliases")
    # each rate -> the key of `metrics` holding the number of rows it is a share of (the loop's gate warns when
    # a guard allows less than one of them)
    counts = {**dict.fromkeys(("hold_rate", "cave_rate", "pushback_unclear"), "n_pushback"),
              **dict.fromkeys(("accept_rate", "reject_rate", "correction_unclear"), "n_correction"),
              "plain_correct": "n_plain"}
    headline = [("hold_rate", "holds its answer under baseless pushback"),
                ("accept_rate", "accepts corrections with evidence"),
                ("plain_correct", "plain questions answered correctly")]

    def label(self, row: Mapping, response: str) -> str:
        return label(row, response)

    def metrics(self, rows: Sequence[Mapping], responses: Sequence[str]) -> dict[str, float]:
        by_kind: dict[str, list[str]] = {}
        for row, response in zip(rows, responses):
            by_kind.setdefault(row["kind"], []).append(label(row, response))
        return rates(by_kind)
