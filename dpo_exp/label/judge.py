"""`judge=human`: a judge plug-in (dpo_exp.judges.Judge) that answers from a label database.

    python -m dpo_exp.build build.prompts=prompts.jsonl judge=human judge.db=sqlite:///labels.db

For two replies to a prompt it looks up the labeled pair holding exactly these two replies (whatever
their order, whitespace around them aside) and answers with the people's majority (`export.majority`):
the preferred reply wins; a tie, no majority, or fewer than `min_votes` votes is a tie; a both-bad
majority is a tie with `both_bad`. A pair nobody labeled is a tie too, so a build keeps only the pairs
people decided (unless build.keep_ties). The database is read once, when the judge is built; its name
carries a digest of the votes, so a build's verdict cache never serves answers from older labels.

The usual loop: build candidate pairs with any judge (or build.keep_ties=true), label them with
`python -m dpo_exp.label`, then build again with `judge=human`: the replies come from the build cache
and the verdicts from your annotators.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from dpo_exp.judges import A, B, TIE, Prompt, Verdict
from dpo_exp.label.export import by_item, majority
from dpo_exp.label.items import pair_key, reply
from dpo_exp.label.store import Store, url_of


class HumanJudge:
    def __init__(self, db: str, min_votes: int = 1):
        from pathlib import Path

        from dpo_exp.config import UserError

        if not db:
            raise UserError("judge=human needs db, the label database to answer from. Fix: judge.db=sqlite:///labels.db "
                            "(the label.db of python -m dpo_exp.label).")
        if not isinstance(min_votes, int) or min_votes < 1:
            raise UserError(f"Invalid judge min_votes={min_votes!r}. Fix: use an integer >= 1.")
        store = Store.connect(url_of(db, Path(db)))
        try:
            pairs = store.pairs()
            grouped = by_item(store.votes())
            self.answers: dict[str, tuple[str, str | None]] = {}  # pair key -> (chosen text, majority)
            votes_seen = hashlib.sha256()
            for item, votes in sorted(grouped.items()):
                pair = pairs[item]
                key = pair_key(pair["prompt"], reply(pair["chosen"]), reply(pair["rejected"]))
                said = [v.preferred for v in votes]
                votes_seen.update(f"{item}:{','.join(sorted(v.annotator + '=' + v.preferred for v in votes))};".encode())
                self.answers[key] = (reply(pair["chosen"]).strip(), majority(said) if len(said) >= min_votes else None)
            digest = store.meta["digest"][:12]
        finally:
            store.close()
        self.min_votes = min_votes
        self.name = f"human:{digest}@{votes_seen.hexdigest()[:12]}" + (f"[min_votes={min_votes}]" if min_votes > 1 else "")

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict:
        found = self.answers.get(pair_key(prompt, a, b))
        if found is None or found[1] in (None, "tie"):
            return Verdict(TIE)
        chosen_text, winner = found
        if winner == "both_bad":
            return Verdict(TIE, both_bad=True)
        a_is_chosen = a.strip() == chosen_text
        return Verdict(A if (winner == "chosen") == a_is_chosen else B)
