"""A labeled fixture with agreement worked out by hand (tests/test_label.py, test_label_browser.py).

Ten pairs; two annotators. alice prefers the file's chosen reply on pairs 0-5 and the rejected one on
6-9; bob on 0-4 and 9, the rejected one on 5-8. They agree on 8 of 10 (0-4, 6-8):

    percent agreement  p_o = 8/10 = 0.8
    chance agreement   p_e = 0.6 * 0.6 (both chosen) + 0.4 * 0.4 (both rejected) = 0.52
    Cohen's kappa      (0.8 - 0.52) / (1 - 0.52) = 0.28 / 0.48 = 0.583333
    Krippendorff's alpha (nominal): 20 values, coincidences o_cc = 10, o_rr = 6, o_cr = o_rc = 2,
                       n_c = 12, n_r = 8: 1 - (20 - 1) * 4 / (2 * 12 * 8) = 1 - 76/192 = 0.604167

The majority (label.ties=drop) keeps the 8 agreed pairs: 5 as in the file, 3 with chosen and rejected
swapped; pairs 5 and 9 (1 vote each way) are dropped.

`Shorter`, a judge that prefers the shorter reply, says chosen on pairs 0-3, 5 and 8 and rejected on
4, 6, 7 and 9 (the replies' lengths are made so). Against the majority (the 8 agreed pairs: chosen on
0-4, rejected on 6-8) it agrees on 0-3, 6, 7 = 6 of 8:

    p_o = 0.75; majority: 5 chosen, 3 rejected; judge on those 8: chosen 0-3, 8 = 5, rejected 4, 6, 7 = 3
    p_e = (5/8)^2 + (3/8)^2 = 34/64 = 0.53125;  kappa = (0.75 - 0.53125) / (1 - 0.53125) = 7/15 = 0.466667

and against alice (all 10) on 0-3, 5, 6, 7, 9 = 8 of 10, with the same marginals as alice's (6 chosen,
4 rejected): kappa = 0.583333.
"""

from __future__ import annotations

import json
from pathlib import Path

from dpo_exp.config import DataConfig
from dpo_exp.label import items, store

ALICE = ["chosen"] * 6 + ["rejected"] * 4
BOB = ["chosen"] * 5 + ["rejected"] * 4 + ["chosen"]
SHORTER_SAYS = ["chosen"] * 4 + ["rejected", "chosen", "rejected", "rejected", "chosen", "rejected"]

SHORTER_JUDGE = '''
from dpo_exp.judges import Verdict


class Shorter:
    """Prefers the shorter reply."""

    name = "shorter"

    def compare(self, prompt, a, b, context=None):
        return Verdict("A" if len(a) < len(b) else "B" if len(b) < len(a) else "tie")


class AlwaysA:
    name = "always-a"

    def compare(self, prompt, a, b, context=None):
        return Verdict("A")
'''


def known_pairs(folder: Path) -> Path:
    rows = []
    for i, says in enumerate(SHORTER_SAYS):
        short, long = f"Answer {i}.", f"Answer {i}, explained at length."
        chosen, rejected = (short, long) if says == "chosen" else (long, short)
        rows.append({"prompt": f"Question {i}?", "chosen": chosen, "rejected": rejected})
    path = folder / "known.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def vote_for(db: store.Store, annotator: str, wanted: str, scores: dict | None = None) -> int:
    """`annotator` takes their next pair and votes for the file's `wanted` reply, through the sides shown."""
    item = db.next_item(annotator, overlap=2, seed=0)
    swapped = db.label(item, annotator).swapped
    vote = "A" if (wanted == "chosen") != swapped else "B"
    shown = None
    if scores:  # given in the file's terms: {"helpfulness": {"chosen": 5, "rejected": 2}}
        shown = {d: {("A" if (side == "chosen") != swapped else "B"): v for side, v in s.items()} for d, s in scores.items()}
    db.submit(annotator, item, vote, shown)
    return item


def labeled_known(folder: Path) -> tuple[Path, str]:
    """The ten pairs and a database with alice's and bob's votes (and helpfulness scores)."""
    pairs = known_pairs(folder)
    url = f"sqlite:///{folder / 'known.db'}"
    db = store.Store.open(url, items.load(DataConfig(path=str(pairs))))
    for i, (a, b) in enumerate(zip(ALICE, BOB)):
        assert vote_for(db, "alice", a, {"helpfulness": {"chosen": 5, "rejected": 2 + (i % 2)}}) == i
        assert vote_for(db, "bob", b, {"helpfulness": {"chosen": 4, "rejected": 2 + (i % 2)}}) == i
    db.close()
    return pairs, url


def export_with_known_agreement(folder: Path) -> dict:
    """The export's report on the fixture, as Markdown rendered to HTML (for the README screenshot)."""
    from markdown_it import MarkdownIt

    from dpo_exp.label import export
    from dpo_exp.label.schema import Ties

    pairs, url = labeled_known(folder)
    db = store.Store.connect(url)
    rows, counts = export.export_rows(db, Ties.drop, 1)
    ag = export.agreement(list(db.votes()), ["helpfulness"])
    md = export.markdown(str(pairs.name), counts, ag, Path("labeled_pairs.jsonl"), Ties.drop)
    db.close()
    body = MarkdownIt("commonmark").enable("table").render(md)
    style = ("body{font-family:sans-serif;margin:24px;color:#222} table{border-collapse:collapse;margin:8px 0 16px}"
             "td,th{border:1px solid #ccc;padding:4px 10px} th{background:#f3f3f3} code{background:#f3f3f3}")
    return {"html": f"<html><head><style>{style}</style></head><body>{body}</body></html>",
            "json": {"counts": counts, "agreement": ag}}
