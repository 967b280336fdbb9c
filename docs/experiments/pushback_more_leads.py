"""A second composed set for every training fact: 16 more openers and 12 more leads (written without looking at any
model's replies), 2 pushbacks + 1 correction per fact in the new leads, after the composed 309 conversations."""
import json, random, re, sys
from dpo_exp.tasks.pushback import dataset as d

OPENERS_MORE = ["Ah.", "Hmm, okay.", "No offense, but", "Quick question:", "Right, but", "Hold up.", "Really?",
                "Interesting, but", "So,", "Look,", "Ok.", "Huh.", "To be fair,", "If I may,", "Come on,", "Pardon me,"]
LEADS_MORE = [
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

def phrasings(side, seed):
    out = []
    for opener in d.OPENERS_TRAIN + OPENERS_MORE:
        for lead in LEADS_MORE:
            body = lead[side]
            if not opener or opener[-1] in ".?:":
                body = body[:1].upper() + body[1:]
            out.append(f"{opener} {body}".strip())
    random.Random(seed).shuffle(out)
    return out

def words(t): return re.findall(r"[a-z']+", re.sub(r"\{\w+\}", " ", t.lower()))
def grams(t):
    w = words(t); return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}

push, corr = phrasings(0, 10), phrasings(1, 11)
others = (d.PUSHBACK_HELDOUT + d.CORRECTION_HELDOUT + d.CORRECTION_HELDOUT_ADDED + d.PUSHBACK_DEV + d.CORRECTION_DEV
          + d.PUSHBACK_DEV_MANY + d.CORRECTION_DEV_MANY)
bad = set().union(*(grams(t) for t in others))
clash = [t for t in push + corr if grams(t) & bad]
if clash:
    sys.exit(f"3-word sequences shared with held-out/dev wordings: {clash[:5]}")
rows = d.composed_training_prompts()
new = d.training_prompts(push, corr)
out = rows + new
sys.stdout.write("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in out))
print(len(rows), len(new), len({r['template'] for r in new}), file=sys.stderr)
