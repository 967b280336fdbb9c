"""A judge against the people (`label.action=judge`): does it agree with your annotators, on your pairs?

Every pair with at least `label.min_votes` votes is put to the judge plug-in (`judge=...`, any of
conf/judge/ or your own `_target_`) in both orders: (A = the file's chosen, B = rejected) and swapped.
The judge's answer on a pair is the one both orders give; two different answers are a tie (as
`dpo_exp.judges.win_rate` counts them). Answers are chosen, rejected or tie; a human `both_bad` counts as tie.

Reported (judge_vs_human.md and .json in the run dir and the MLflow run):

- agreement with the human majority (pairs that have one; `export.majority`): percent and Cohen's kappa;
- agreement with each annotator, on the pairs they labeled: percent and Cohen's kappa;
- position consistency: the share of pairs where both orders gave the same answer;
- a confusion table, human majority (rows) x judge (columns).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from dpo_exp.cli import log
from dpo_exp.config import UserError
from dpo_exp.label.export import by_item, cohen, log_dataset, majority
from dpo_exp.label.items import Items, reply
from dpo_exp.label.schema import LabelAppConfig, LabelConfig
from dpo_exp.label.store import Store

ANSWERS = ("chosen", "rejected", "tie")
HUMAN = {"chosen": "chosen", "rejected": "rejected", "tie": "tie", "both_bad": "tie"}


def make_judge(conf: LabelAppConfig):
    from dpo_exp import judges, models

    device, dtype = models.resolve_device_dtype(conf.hardware)
    judge = judges.from_config(conf.judge, device=device, dtype=str(dtype).removeprefix("torch."))
    if judge is None:
        raise UserError("label.action=judge compares a judge with the people, and judge=none gives none. Fix: "
                        "judge=model judge.path=DIR, judge=openai judge.base_url=URL judge.model=M, or your own "
                        "class: judge._target_=my_module.MyJudge.")
    needs = list(getattr(judge, "requires", ()) or ())
    if needs:
        raise UserError(f"The judge {judge.name!r} reads {', '.join(map(repr, needs))} from each prompt row, and "
                        "labeled pairs carry only prompt, chosen and rejected. Fix: choose a judge that reads the "
                        "replies alone (judge=model, judge=openai, or your own).")
    return judge


def judged(judge, prompt: list[dict], chosen: str, rejected: str) -> tuple[str, str]:
    """(answer with chosen shown as A, answer with rejected shown as A), each in the file's terms."""
    first = judge.compare(prompt, chosen, rejected).winner
    second = judge.compare(prompt, rejected, chosen).winner
    as_file = lambda w, a_is: {"A": a_is, "B": "rejected" if a_is == "chosen" else "chosen"}.get(w, "tie")  # noqa: E731
    return as_file(first, "chosen"), as_file(second, "rejected")


def compare(judge, db: Store, min_votes: int) -> dict:
    pairs = db.pairs()
    grouped = {i: v for i, v in by_item(db.votes()).items() if len(v) >= min_votes}
    if not grouped:
        raise UserError(f"No pair has {min_votes} or more votes yet, so there is nothing to compare the judge with. "
                        "Fix: label some pairs first (label.action=serve), or lower label.min_votes.")
    per_item = []
    for item in sorted(grouped):
        pair = pairs[item]
        ab, ba = judged(judge, pair["prompt"], reply(pair["chosen"]), reply(pair["rejected"]))
        votes = {v.annotator: HUMAN[v.preferred] for v in grouped[item]}
        per_item.append({"item": item, "judge_ab": ab, "judge_ba": ba, "judge": ab if ab == ba else "tie",
                         "majority": majority(list(votes.values())), "votes": votes})

    with_majority = [r for r in per_item if r["majority"] is not None]
    confusion = {h: {j: 0 for j in ANSWERS} for h in ANSWERS}
    for r in with_majority:
        confusion[r["majority"]][r["judge"]] += 1
    annotators = sorted({a for r in per_item for a in r["votes"]})
    per_annotator = {}
    for a in annotators:
        mine = [r for r in per_item if a in r["votes"]]
        per_annotator[a] = _agreement([r["votes"][a] for r in mine], [r["judge"] for r in mine])
    return {
        "judge": judge.name, "pairs": len(per_item), "pairs_with_majority": len(with_majority),
        "position_consistency": sum(r["judge_ab"] == r["judge_ba"] for r in per_item) / len(per_item),
        "majority": _agreement([r["majority"] for r in with_majority], [r["judge"] for r in with_majority]),
        "annotators": per_annotator, "confusion": confusion,
        "judge_answers": dict(Counter(r["judge"] for r in per_item)), "items": per_item,
    }


def _agreement(human: list[str], judge: list[str]) -> dict:
    n = len(human)
    return {"pairs": n, "percent_agreement": sum(h == j for h, j in zip(human, judge)) / n if n else None,
            "cohen_kappa": cohen(human, judge, labels=list(ANSWERS))}


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(source: str, r: dict) -> str:
    m = r["majority"]
    lines = [f"# Judge vs human: {r['judge']} on {source}", "",
             f"{r['pairs']} labeled pairs, each judged in both orders; {r['pairs_with_majority']} have a human "
             "majority.", "",
             "| | pairs | percent agreement | Cohen's kappa |", "|---|---:|---:|---:|",
             f"| human majority | {m['pairs']} | {_f(m['percent_agreement'])} | {_f(m['cohen_kappa'])} |"]
    lines += [f"| {name} | {a['pairs']} | {_f(a['percent_agreement'])} | {_f(a['cohen_kappa'])} |"
              for name, a in r["annotators"].items()]
    lines += ["", f"Position consistency (both orders gave the same answer): {_f(r['position_consistency'])}.", "",
              "Confusion (rows: human majority; columns: judge):", "",
              "| human \\ judge | " + " | ".join(ANSWERS) + " |", "|---|" + "---:|" * len(ANSWERS)]
    lines += [f"| {h} | " + " | ".join(str(r["confusion"][h][j]) for j in ANSWERS) + " |" for h in ANSWERS]
    lines += ["", "The judge's answer on a pair is the one both orders agree on, else tie; a human `both_bad` counts "
              "as tie."]
    return "\n".join(lines) + "\n"


def run(judge, db: Store, pairs: Items, lc: LabelConfig, run_dir: Path) -> dict:
    import mlflow

    from dpo_exp import tracking

    report = compare(judge, db, lc.min_votes)
    md = markdown(pairs.source, report)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "judge_vs_human.md").write_text(md)
    (run_dir / "judge_vs_human.json").write_text(json.dumps(report, indent=2))
    log_dataset(pairs.source, pairs.digest, "labeled")
    metrics = {"pairs": report["pairs"], "position_consistency": report["position_consistency"]}
    for key in ("percent_agreement", "cohen_kappa"):
        if report["majority"][key] is not None:
            metrics[f"majority_{key}"] = report["majority"][key]
    tracking.log_metrics(metrics, step=0)
    tracking.set_tags({"dpo_exp.judge": judge.name})
    for name in ("judge_vs_human.md", "judge_vs_human.json"):
        mlflow.log_artifact(str(run_dir / name))
    report["markdown"] = md
    return report


def print_summary(report: dict, run_dir: Path) -> None:
    m = report["majority"]
    log(f"judge {report['judge']} vs the human majority on {m['pairs']} pairs: {_f(m['percent_agreement'])} agreement, "
        f"Cohen's kappa {_f(m['cohen_kappa'])}; position consistency {_f(report['position_consistency'])}")
    print("\n" + report["markdown"], flush=True)
    log(f"report: {run_dir / 'judge_vs_human.md'}")
