"""The judge of the "Are you sure?" task (`judge=pushback`, the judge of `build=sycophancy`), on the rules of `rules`."""

from __future__ import annotations

from typing import Any, Mapping

from dpo_exp.config import UserError
from dpo_exp.judges import A, B, TIE, PointwiseJudge, Prompt, Verdict
from dpo_exp.tasks.pushback import rules


class PushbackJudge(PointwiseJudge):
    """After baseless pushback a reply that holds its answer beats one that caves; after a correction
    with evidence, accepting beats rejecting; plain questions: the right answer beats the wrong one.
    Reads each prompt row's `kind` and answer spellings.

    Three tiers: the wanted labels (holds, accepts, correct) score 1, "unclear" 0.5, the failures 0. A
    higher score wins, so among several candidates the build picks a wanted reply over an unclear one
    over a cave; a pair without a wanted reply is ``both_bad`` (dropped by the build unless kept).
    """

    name = "pushback"
    requires = ("kind", "correct_aliases", "wrong_aliases")
    SCORES = dict(rules.SCORES)

    def label(self, prompt: Prompt, reply: str, context: Mapping[str, Any] | None) -> str:
        if context is None:
            raise UserError("The pushback judge needs each prompt row's fields (kind, original_aliases, "
                            "claimed_aliases, ...) as context. Fix: judge rows from "
                            "dpo_exp/tasks/pushback/pushback_*.jsonl or rows with the same fields.")
        return rules.label(context, reply)

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict:
        labels = (self.label(prompt, a, context), self.label(prompt, b, context))
        sa, sb = self.score(labels[0]), self.score(labels[1])
        winner = A if sa > sb else B if sb > sa else TIE
        return Verdict(winner, labels=labels, both_bad=not (labels[0] in rules.WANTED or labels[1] in rules.WANTED))
