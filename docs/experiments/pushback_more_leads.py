"""The prompts of the "more wordings" runs (docs/experiments/pushback.md, "Where the target stands"):

    python docs/experiments/pushback_more_leads.py > more_leads.jsonl                        # 618: twice the composed
    python docs/experiments/pushback_more_leads.py --times 3 > more_leads3.jsonl             # 927: three times
    python docs/experiments/pushback_more_leads.py --times 3 --added-only > more_leads3_added.jsonl  # its last 618

The 309 composed training conversations, then 309 more per added block: per training fact two pushbacks and one
correction. Block 2: 12 new leads x 32 openers (the 16 composed ones and 16 new). Block 3 (`--times 3`): 12 leads
newer still x 48 openers (those 32 and 16 more). All written without looking at any model's replies. Exits with an
error if a new wording shares a 3-word sequence with a held-out or dev wording (`dataset.trigrams`, the rule
tests/test_pushback.py checks for the shipped lists). `--added-only` leaves out the composed 309, whose pairs ship
as dpo_exp/tasks/pushback/pushback_train_composed.jsonl (a build samples each conversation on its own, so building
the added ones and appending their pairs to the shipped file gives the pairs of the whole list).
"""
import argparse
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
# Block 3 (2026-12-07): written, like block 2, before any of its replies were sampled.
OPENERS_MORE_3 = ["Not so fast.", "Erm,", "Seriously?", "Oh, hmm.", "Pardon?", "Now,", "See,", "Yeah, but",
                  "Mind you,", "I mean,", "Alright, but", "Forgive me, but", "Hey,", "Nope.", "Oh, really?", "Frankly,"]
LEADS_MORE_3 = [
    ("my aunt insists it's {wrong}.", "my aunt insists it's {right}, because {reason}."),
    ("the trivia app said {wrong}.", "the trivia app said {right}, since {reason}."),
    ("I'm convinced it's {wrong}.", "I'm convinced it's {right}, given that {reason}."),
    ("my professor wrote {wrong} on the board.", "my professor wrote {right} on the board, explaining that {reason}."),
    ("the almanac lists {wrong}.", "the almanac lists {right}; it points out that {reason}."),
    ("my gran used to say {wrong}.", "my gran used to say {right}, since {reason}."),
    ("the flashcards say {wrong}.", "the flashcards say {right}. The back of the card says {reason}."),
    ("a blog I read said {wrong}.", "a blog I read said {right}, because {reason}."),
    ("my roommate is certain it's {wrong}.", "my roommate is certain it's {right}, because {reason}."),
    ("the tour guide told us {wrong}.", "the tour guide told us {right}, pointing out that {reason}."),
    ("the crossword answer was {wrong}.", "the crossword answer was {right}, because {reason}."),
    ("I read somewhere it's {wrong}.", "I read somewhere it's {right}, since {reason}."),
]


def phrasings(openers: list[str], leads: list[tuple[str, str]], side: int, seed: int) -> list[str]:
    """Every opener with every lead of one side (0 pushback, 1 correction), in a fixed shuffled order. Unlike
    `dataset._openers_with`, an opener ending in ":" also starts a capitalised body (kept: the probe trained on it)."""
    out = []
    for opener in openers:
        for lead in leads:
            body = lead[side]
            if not opener or opener[-1] in ".?:":
                body = body[:1].upper() + body[1:]
            out.append(f"{opener} {body}".strip())
    random.Random(seed).shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, choices=(2, 3), default=2, help="the composed conversations' multiple")
    parser.add_argument("--added-only", action="store_true", help="leave out the composed 309 conversations")
    args = parser.parse_args()
    openers2 = d.OPENERS_TRAIN + OPENERS_MORE
    blocks = [(phrasings(openers2, LEADS_MORE, 0, 10), phrasings(openers2, LEADS_MORE, 1, 11))]
    if args.times == 3:
        openers3 = openers2 + OPENERS_MORE_3
        blocks.append((phrasings(openers3, LEADS_MORE_3, 0, 12), phrasings(openers3, LEADS_MORE_3, 1, 13)))
    others = (d.PUSHBACK_HELDOUT + d.CORRECTION_HELDOUT + d.CORRECTION_HELDOUT_ADDED + d.PUSHBACK_DEV
              + d.CORRECTION_DEV + d.PUSHBACK_DEV_MANY + d.CORRECTION_DEV_MANY)
    taken = set().union(*(d.trigrams(t) for t in others))
    clash = [t for push, corr in blocks for t in push + corr if d.trigrams(t) & taken]
    if clash:
        sys.exit(f"3-word sequences shared with held-out or dev wordings: {clash[:5]}")
    rows = [] if args.added_only else d.composed_training_prompts()
    for push, corr in blocks:
        rows += d.training_prompts(push, corr)
    sys.stdout.write("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


if __name__ == "__main__":
    main()
