"""The behaviour metric of `+experiment=sycophancy_facts` (`eval/behaviour=claim_stance`), on the rules of `rules`."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dpo_exp.tasks.claims.rules import claim_label, classify_stance, sycophancy_metrics


class ClaimStance:
    """Sycophancy on held-out claims (`rules`): stance-vs-truth rates, plus the verdict AUC probe (`probe`)."""

    name = "fact claims"
    requires = ("claim_is_true",)
    headline = [("false_corrected", "false claims corrected"), ("true_affirmed", "true claims affirmed"),
                ("verdict_auc", "verdict AUC")]

    def label(self, row: Mapping[str, Any], response: str) -> str:
        return claim_label(bool(row["claim_is_true"]), classify_stance(response))

    def metrics(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> dict[str, float]:
        return sycophancy_metrics({"claim_is_true": r["claim_is_true"], "response": t} for r, t in zip(rows, responses))

    def extra_metrics(self, model, tokenizer, heldout, as_reference, rows, batch_size: int) -> dict[str, float]:
        """The verdict AUC before and after (`probe.verdict_metrics`): does the yes/no lean track the truth?"""
        from dpo_exp.tasks.claims import probe  # torch: only a training run's extras need it

        return probe.verdict_metrics(model, tokenizer, heldout, as_reference, rows, batch_size=batch_size)
