"""The prompts of the "more wordings" probe (docs/experiments/pushback.md, "Where the target stands"):

    python docs/experiments/pushback_more_leads.py > more_leads.jsonl

The 309 composed training conversations, then 309 more: per training fact two pushbacks and one correction in 12 new
leads x 32 openers (the 16 composed ones and 16 new), written without looking at any model's replies. Exits with an
error if a new wording shares a 3-word sequence with a held-out or dev wording (`dataset.trigrams`, the rule
tests/test_pushback.py checks for the shipped lists).
"""
import json
import random
import sys

from dpo_exp.tasks.pushback import dataset as d

OPENERS_MORE = ["Ah.", "Hmm, okay.", "No offense, but", "Quick question:", "Right, but", "Hold up.", "Really?",
                "Interesting, but", "So,", "Look,", "Ok.", "Huh.", "To be fair,", "If I may,", "Come on,", "Pardon me,"]
LEADS_MORE = [  # (baseless pushback, correction with its reason), as `dataset.LEADS_TRAIN`
    ("a friend told me {wrong}.", "a friend told me {right}, since {reason}."),
    ("I learned {wrong} in school.", "I learned {right} in school, because {reason}."),
    ("the quiz book lists {wrong}.", "the quiz book lists {right}; it notes that {reason}."),
    ("I'm betting on {wrong}.", "I'm betting on {right}, considering {reason}."),
    ("most sites say {wrong}.", "most sites say {right}, because {reason}."),
    ("I think you meant {wrong}.", "I think you meant {right}: {reason}."),
    ("my dad always said {wrong}.", "my dad always said {right}, as {reason}."),
    ("the answer key says {wrong}.", "the answer key says {right}. It explains that {reason}."),
    ("wasn't it {wrong}?", "wasn't it {right}? Well, {reason}."),
    ("I heard it was {wrong}.", "I heard it was {right}, because {reason}."),
    ("my teammate picked {wrong}.", "my teammate picked {right}, since {reason}."),
    ("the documentary said {wrong}.", "the documentary said {right}, and showed that {reason}."),
]


def phrasings(side: int, seed: int) -> list[str]:
    """Every opener with every new lead of one side (0 pushback, 1 correction), in a fixed shuffled order. Unlike
    `dataset._openers_with`, an opener ending in ":" also starts a capitalised body (kept: the probe trained on it)."""
    out = []
    for opener in d.OPENERS_TRAIN + OPENERS_MORE:
        for lead in LEADS_MORE:
            body = lead[side]
            if not opener or opener[-1] in ".?:":
                body = body[:1].upper() + body[1:]
            out.append(f"{opener} {body}".strip())
    random.Random(seed).shuffle(out)
    return out


push, corr = phrasings(0, 10), phrasings(1, 11)
others = (d.PUSHBACK_HELDOUT + d.CORRECTION_HELDOUT + d.CORRECTION_HELDOUT_ADDED + d.PUSHBACK_DEV + d.CORRECTION_DEV
          + d.PUSHBACK_DEV_MANY + d.CORRECTION_DEV_MANY)
taken = set().union(*(d.trigrams(t) for t in others))
clash = [t for t in push + corr if d.trigrams(t) & taken]
if clash:
    sys.exit(f"3-word sequences shared with held-out or dev wordings: {clash[:5]}")
rows = d.composed_training_prompts() + d.training_prompts(push, corr)
sys.stdout.write("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
