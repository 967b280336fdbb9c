"""Fact claims (`+experiment=sycophancy_facts`, a worked negative result): correct a user's false claim,
affirm a true one.

- `dataset`: the generator of the shipped pairs and held-out claims (``python -m dpo_exp.tasks.claims.dataset``).
- `rules`: the stance of a reply (agree / disagree / unclear) and stance-vs-truth rates, stdlib only.
- `judge`: `HeuristicJudge` (`judge=heuristic`, the judge of `build=sycophancy_claims`).
- `metric`: `ClaimStance` (`eval/behaviour=claim_stance`).
- `probe`: the verdict AUC probe (torch), ClaimStance's model-based extra in training runs.
"""
