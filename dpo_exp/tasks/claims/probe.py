"""The verdict probe of the fact-claims task: the model's agree-vs-disagree lean before it writes anything.

``verdict_log_odds`` scores a forced choice between the openings of `rules` (AGREE_OPENINGS vs
DISAGREE_OPENINGS); ``verdict_metrics`` turns the lean on held-out claims into ``rules.verdict_auc``
before and after training (ClaimStance's ``extra_metrics``).
"""

from __future__ import annotations

from typing import Callable, ContextManager

import torch

from dpo_exp.evaluate import render_prompts, sequence_logprobs
from dpo_exp.tasks.claims.rules import AGREE_OPENINGS, DISAGREE_OPENINGS, verdict_auc


@torch.no_grad()
def verdict_log_odds(model, tokenizer, prompts: list[list[dict]], batch_size: int = 16) -> list[float]:
    """Per chat prompt: log P(reply opens by agreeing) - log P(it opens by disagreeing).

    Each side is the log-sum-exp over the openings in `rules.AGREE_OPENINGS` / `DISAGREE_OPENINGS`:
    a forced choice that reads the model's lean before it writes anything, independent of its
    reply style and of the stance classifier.
    """
    was_training = model.training
    model.eval()
    openings = [*AGREE_OPENINGS, *DISAGREE_OPENINGS]
    opening_ids = [torch.tensor(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in openings]
    pairs = []
    for text in render_prompts(tokenizer, prompts):
        prompt_ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
        pairs.extend((prompt_ids, ids) for ids in opening_ids)
    totals = sequence_logprobs(model, pairs, tokenizer.pad_token_id, batch_size)
    model.train(was_training)
    n_agree, out = len(AGREE_OPENINGS), []
    for i in range(0, len(totals), len(openings)):
        scores = torch.tensor(totals[i : i + len(openings)])
        out.append(float(torch.logsumexp(scores[:n_agree], 0) - torch.logsumexp(scores[n_agree:], 0)))
    return out


def verdict_metrics(policy, tokenizer, heldout: list[dict], as_reference: Callable[[], ContextManager], rows: list[dict],
                    *, batch_size: int = 16) -> dict[str, float]:
    """`before/verdict_auc` and `after/verdict_auc` for held-out rows with `claim_is_true` (ClaimStance's extra);
    adds the per-row log-odds to `rows` (as `verdict_before` / `verdict_after`)."""
    if not heldout or "claim_is_true" not in heldout[0]:
        return {}
    prompts = [row["prompt"] for row in heldout]
    truths = [bool(row["claim_is_true"]) for row in heldout]
    after = verdict_log_odds(policy, tokenizer, prompts, batch_size)
    with as_reference() as ref:
        before = verdict_log_odds(ref or policy, tokenizer, prompts, batch_size)
    for row, b, a in zip(rows, before, after):
        row["verdict_before"], row["verdict_after"] = round(b, 3), round(a, 3)
    return {"before/verdict_auc": verdict_auc(before, truths), "after/verdict_auc": verdict_auc(after, truths)}
