"""Majority votes into a preference file that trains, and how far the annotators agree.

`export` (`label.action=export`) writes, per pair with at least `label.min_votes` votes, the canonical row
(prompt, chosen, rejected: the people's preferred reply as chosen) plus its provenance:

    {"prompt": [...], "chosen": [...], "rejected": [...],
     "verdict": "human",                              # or "tie" (label.ties=keep)
     "votes": {"chosen": 2, "rejected": 1, "tie": 0, "both_bad": 0},   # in the exported row's terms
     "annotators": {"alice": "chosen", "bob": "chosen", "cy": "rejected"},
     "agreement": 0.667,                              # the majority's share of the votes
     "dimensions": {"helpfulness": {"chosen": 5, "rejected": 3}, ...},  # mean 1-5 score per reply
     "comments": {"cy": "..."}, "label_item": 7, "label_digest": "3f2a..."}

Majority rule: the answer (chosen, rejected, tie, both bad) with strictly the most votes. A pair whose
majority is `both_bad` is dropped; one whose majority is `tie`, or without a majority (1 vs 1), follows
`label.ties`: `drop` (counted) or `keep` (the file's chosen/rejected, `verdict: tie`). Every drop is
counted in the summary. The extra keys are ignored by dpo_exp's readers, so `data=file data.path=<out>`
trains on the file as it is.

Agreement (`agreement`), on the pairs with two or more votes:

- percent agreement: per pair, the share of annotator pairs that gave the same answer, averaged;
- Cohen's kappa (scikit-learn) for every two annotators, on the pairs both labeled (with exactly two
  annotators this is *the* kappa);
- Krippendorff's alpha (`krippendorff`, nominal), any number of annotators, missing votes allowed;
- per dimension and reply: exact-agreement share and Krippendorff's alpha (ordinal) of the 1-5 scores.

A statistic that is undefined (every vote the same answer, fewer than two annotators) is null, not 0.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dpo_exp.cli import log
from dpo_exp.label.items import Items
from dpo_exp.label.schema import LabelConfig, Ties
from dpo_exp.label.store import PREFERRED, Label, Store

FLIP = {"chosen": "rejected", "rejected": "chosen", "tie": "tie", "both_bad": "both_bad"}


# --- majority ------------------------------------------------------------------------------------


def majority(votes: list[str]) -> str | None:
    """The answer with strictly the most votes, or None (no votes, or a tie for first place)."""
    counts = Counter(votes).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def by_item(labels) -> dict[int, list[Label]]:
    out: dict[int, list[Label]] = defaultdict(list)
    for lab in labels:
        out[lab.item].append(lab)
    return out


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 3)


def dimensions_block(votes: list[Label], flip: bool) -> dict:
    """{dimension: {"chosen": mean, "rejected": mean}} of the scores given, in the exported row's terms."""
    scores: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for lab in votes:
        for dim, sides in (lab.scores or {}).items():
            for side, value in sides.items():
                scores[dim][FLIP[side] if flip else side].append(value)
    return {dim: {side: _number(sum(v) / len(v)) for side, v in sorted(sides.items())} for dim, sides in scores.items()}


@dataclass
class Exported:
    rows: list[dict]
    counts: dict[str, int] = field(default_factory=dict)  # kept, dropped_both_bad, dropped_ties, ...
    agreement: dict = field(default_factory=dict)
    out: Path | None = None
    markdown: str = ""
    prompts: Path | None = None  # arena: every prompt typed


def export_rows(db: Store, ties: Ties, min_votes: int) -> tuple[list[dict], dict[str, int]]:
    pairs = db.pairs()
    grouped = by_item(db.votes())
    digest = db.meta["digest"][:16]
    rows, counts = [], Counter({"pairs": len(pairs), "kept": 0, "unlabeled": 0, "too_few_votes": 0,
                                "dropped_both_bad": 0, "dropped_ties": 0, "kept_ties": 0, "flipped": 0,
                                "identical_replies": 0})
    for item, pair in enumerate(pairs):
        votes = grouped.get(item, [])
        if not votes:
            counts["unlabeled"] += 1
            continue
        if len(votes) < min_votes:
            counts["too_few_votes"] += 1
            continue
        if pair["chosen"][-1]["content"].strip() == pair["rejected"][-1]["content"].strip():
            counts["identical_replies"] += 1  # (arena: both contenders said the same) no preference to learn
            continue
        winner = majority([v.preferred for v in votes])
        if winner == "both_bad":
            counts["dropped_both_bad"] += 1
            continue
        if winner in (None, "tie"):
            if ties == Ties.drop:
                counts["dropped_ties"] += 1
                continue
            counts["kept_ties"] += 1
        flip = winner == "rejected"
        counts["flipped"] += flip
        chosen, rejected = (pair["rejected"], pair["chosen"]) if flip else (pair["chosen"], pair["rejected"])
        said = {v.annotator: FLIP[v.preferred] if flip else v.preferred for v in votes}
        tally = Counter(said.values())
        row = {"prompt": pair["prompt"], "chosen": chosen, "rejected": rejected,
               "verdict": "human" if winner in ("chosen", "rejected") else "tie",
               "votes": {k: tally.get(k, 0) for k in PREFERRED}, "annotators": said,
               "agreement": round(tally.most_common(1)[0][1] / len(votes), 3)}
        dims = dimensions_block(votes, flip)
        if dims:
            row["dimensions"] = dims
        comments = {v.annotator: v.comment for v in votes if v.comment}
        if comments:
            row["comments"] = comments
        if "models" in pair:  # arena: which contender wrote which reply
            m = pair["models"]
            row["models"] = {"chosen": m["rejected"], "rejected": m["chosen"]} if flip else dict(m)
        row.update(label_item=item, label_digest=digest)
        rows.append(row)
        counts["kept"] += 1
    return rows, dict(counts)


# --- agreement -------------------------------------------------------------------------------------


def cohen(a: list, b: list, labels: list | None = None, weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters' answers on the same items (scikit-learn); None when undefined."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant rater: 0/0, reported as None below
        k = cohen_kappa_score(a, b, labels=labels, weights=weights)
    return None if k is None or math.isnan(k) else float(k)


def alpha(matrix: list[list], level: str) -> float | None:
    """Krippendorff's alpha of a raters x units matrix (None = no answer); None when undefined."""
    import numpy as np

    if len(matrix) < 2:
        return None
    values = sorted({v for row in matrix for v in row if v is not None}, key=str)
    if len(values) < 2:
        return None
    import krippendorff

    code = {v: i for i, v in enumerate(values)}
    data = np.array([[np.nan if v is None else float(code[v] if level == "nominal" else v) for v in row]
                     for row in matrix], dtype=float)
    try:
        a = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(a) else float(a)


def percent_agreement(answers_per_item: list[list]) -> float | None:
    shares = []
    for answers in answers_per_item:
        if len(answers) < 2:
            continue
        pairs = list(itertools.combinations(answers, 2))
        shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def agreement(labels: list[Label], dimensions: list[str]) -> dict:
    """The agreement report's numbers (see the module docstring)."""
    grouped = {i: v for i, v in by_item(labels).items()}
    annotators = sorted({lab.annotator for lab in labels})
    multi = {i: v for i, v in grouped.items() if len(v) >= 2}
    answer = {(lab.annotator, lab.item): lab.preferred for lab in labels}
    units = sorted(grouped)
    report: dict = {
        "annotators": annotators, "votes": len(labels), "pairs_labeled": len(grouped), "pairs_with_2_votes": len(multi),
        "percent_agreement": percent_agreement([[v.preferred for v in vs] for vs in multi.values()]),
        "krippendorff_alpha": alpha([[answer.get((a, i)) for i in units] for a in annotators], "nominal"),
        "cohen_kappa": None, "pairwise": [], "dimensions": {},
    }
    for x, y in itertools.combinations(annotators, 2):
        both = [i for i in units if (x, i) in answer and (y, i) in answer]
        a, b = [answer[(x, i)] for i in both], [answer[(y, i)] for i in both]
        report["pairwise"].append({"annotators": [x, y], "pairs": len(both),
                                   "percent_agreement": (sum(p == q for p, q in zip(a, b)) / len(both)) if both else None,
                                   "cohen_kappa": cohen(a, b, labels=list(PREFERRED))})
    if len(annotators) == 2:
        report["cohen_kappa"] = report["pairwise"][0]["cohen_kappa"]
    for dim in dimensions:
        per_side = {}
        for side in ("chosen", "rejected"):
            score = {(lab.annotator, lab.item): (lab.scores or {}).get(dim, {}).get(side) for lab in labels}
            rated = [[s for a in annotators if (s := score.get((a, i))) is not None] for i in units]
            if not any(rated):
                continue
            per_side[side] = {
                "scores": sum(len(r) for r in rated),
                "percent_agreement": percent_agreement(rated),
                "krippendorff_alpha": alpha([[score.get((a, i)) for i in units] for a in annotators], "ordinal"),
            }
        if per_side:
            report["dimensions"][dim] = per_side
    return report


# --- the report --------------------------------------------------------------------------------------


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(source: str, counts: dict, ag: dict, out: Path | None, ties: Ties) -> str:
    lines = [f"# Labels of {source}", ""]
    if out is not None:
        lines += [f"Exported {counts['kept']} of {counts['pairs']} pairs to `{out}` (train on it: "
                  f"`python -m dpo_exp data=file data.path={out}`).", ""]
    lines += ["| pairs | labeled | kept | chosen and rejected swapped | both bad (dropped) | "
              f"tie or no majority ({ties.value}) | unlabeled | too few votes |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|",
              f"| {counts['pairs']} | {ag['pairs_labeled']} | {counts['kept']} | {counts['flipped']} | "
              f"{counts['dropped_both_bad']} | {counts['dropped_ties'] + counts['kept_ties']} | {counts['unlabeled']} | "
              f"{counts['too_few_votes']} |", "",
              "## Agreement", "",
              f"{len(ag['annotators'])} annotators ({', '.join(ag['annotators'])}), {ag['votes']} votes; "
              f"{ag['pairs_with_2_votes']} pairs have two or more.", "",
              "| statistic | value |", "|---|---:|",
              f"| percent agreement | {_f(ag['percent_agreement'])} |",
              f"| Cohen's kappa (2 annotators) | {_f(ag['cohen_kappa'])} |",
              f"| Krippendorff's alpha (nominal) | {_f(ag['krippendorff_alpha'])} |", ""]
    if len(ag["pairwise"]) > 1:
        lines += ["| annotators | pairs both labeled | percent agreement | Cohen's kappa |", "|---|---:|---:|---:|"]
        lines += [f"| {' / '.join(p['annotators'])} | {p['pairs']} | {_f(p['percent_agreement'])} | "
                  f"{_f(p['cohen_kappa'])} |" for p in ag["pairwise"]]
        lines.append("")
    if ag["dimensions"]:
        lines += ["## Scores per dimension (1-5)", "",
                  "| dimension | reply | scores | percent agreement | Krippendorff's alpha (ordinal) |",
                  "|---|---|---:|---:|---:|"]
        for dim, sides in ag["dimensions"].items():
            for side, s in sides.items():
                lines.append(f"| {dim} | {side} | {s['scores']} | {_f(s['percent_agreement'])} | "
                             f"{_f(s['krippendorff_alpha'])} |")
        lines.append("")
    lines += ["Percent agreement: per pair, the share of annotator pairs giving the same answer (chosen, rejected, "
              "tie, both bad), averaged over pairs with two or more votes. Kappa and alpha correct it for chance; "
              "n/a: undefined (fewer than two annotators, or one answer throughout)."]
    return "\n".join(lines) + "\n"


def write_jsonl(rows: list[dict], path: Path) -> str:
    import hashlib

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return hashlib.sha256(text.encode()).hexdigest()


def log_dataset(path: str, digest: str, context: str) -> None:
    """`path` as an MLflow dataset input of the active run."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(path).resolve()) if Path(path).exists() else path)
    mlflow.log_input(MetaDataset(source=source, name=Path(path).name, digest=digest[:16]), context=context)


def run(db: Store, pairs: Items, lc: LabelConfig, run_dir: Path) -> Exported:
    """`label.action=export`: the file, the report (agreement.md, agreement.json, labels.jsonl with every
    vote as given) in the run dir, and the same logged to the active MLflow run."""
    import mlflow

    from dpo_exp import tracking

    rows, counts = export_rows(db, lc.ties, lc.min_votes)
    out = Path(lc.out).expanduser().resolve() if lc.out else run_dir / "labeled_pairs.jsonl"
    digest = write_jsonl(rows, out)
    ag = agreement(list(db.votes()), [str(d) for d in lc.dimensions])
    md = markdown(pairs.source, counts, ag, out, lc.ties)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "agreement.md").write_text(md)
    (run_dir / "agreement.json").write_text(json.dumps({"counts": counts, "agreement": ag}, indent=2))
    raw = [{"item": lab.item, "annotator": lab.annotator, "vote_shown": lab.vote, "preferred": lab.preferred,
            "rejected_shown_as_a": lab.swapped, "scores": lab.scores, "comment": lab.comment,
            "shown_at": lab.shown_at, "labeled_at": lab.labeled_at, "app_version": lab.app_version}
           for lab in db.labels()]
    write_jsonl(raw, run_dir / "labels.jsonl")
    artifacts = ["agreement.md", "agreement.json", "labels.jsonl"]
    prompts = None
    if db.meta["digest"].startswith("arena:"):  # the prompts people typed, for the next round of data
        from dpo_exp.label.arena import prompts_of

        prompts = run_dir / "prompts.jsonl"
        write_jsonl(prompts_of(db), prompts)
        artifacts.append("prompts.jsonl")

    if prompts is None:
        log_dataset(pairs.source, pairs.digest, "labeled")
    else:  # arena: no file was labeled; the pairs its votes made are the data
        log_dataset(str(out), digest, "arena")
    metrics = {f"pairs_{k}": v for k, v in counts.items()}
    metrics.update({k: ag[k] for k in ("percent_agreement", "cohen_kappa", "krippendorff_alpha") if ag[k] is not None})
    metrics.update(annotators=len(ag["annotators"]), votes=ag["votes"])
    tracking.log_metrics(metrics, step=0)
    for name in artifacts:
        mlflow.log_artifact(str(run_dir / name))
    mlflow.log_artifact(str(out))
    return Exported(rows=rows, counts=counts, agreement=ag, out=out, markdown=md, prompts=prompts)


def print_summary(result: Exported) -> None:
    c, ag = result.counts, result.agreement
    log(f"exported {c['kept']} of {c['pairs']} pairs -> {result.out} ({c['dropped_both_bad']} both bad, "
        f"{c['dropped_ties']} ties or without a majority dropped, {c['unlabeled']} unlabeled)")
    log(f"agreement: {_f(ag['percent_agreement'])} percent agreement, Cohen's kappa {_f(ag['cohen_kappa'])}, "
        f"Krippendorff's alpha {_f(ag['krippendorff_alpha'])} ({len(ag['annotators'])} annotators)")
    if result.prompts is not None:
        log(f"prompts typed in the arena, for the next round (build.prompts=...): {result.prompts}")
    log(f"train on it: python -m dpo_exp data=file data.path={result.out}")
