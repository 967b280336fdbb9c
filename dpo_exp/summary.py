"""A sweep's summary, built from MLflow alone, so it can be rebuilt any time (`python -m dpo_exp.report`).

For every child run of the sweep's parent: what it overrides, status, runtime, and the final
train/eval reward margin, accuracy, loss and KL; the behaviour metric's headline rates before ->
after (named by the runs' `dpo_exp.behaviour.headline` tag), with their mean and spread over seeds
when the sweep varies `train.seed`. Written as summary.md and summary.csv, with three plots: margin
and accuracy vs beta (one line per learning rate), the KL-vs-reward frontier, and the training
curves overlaid. At the end of a sweep (dpo_exp.sweep) the same files go on the parent run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from dpo_exp import tracking

COLUMNS = [  # (MLflow metric, column name)
    ("rewards/margins", "train margin"),
    ("eval_rewards/margins", "eval margin"),
    ("rewards/accuracies", "train acc"),
    ("eval_rewards/accuracies", "eval acc"),
    ("eval_kl/sampled_full_vocab", "KL"),
    ("loss", "train loss"),
    ("eval_loss", "eval loss"),
]


SEED_KEY = "train.seed"


@dataclass
class Summary:
    rows: list[dict]
    varying: list[str]
    markdown: str
    files: list[Path] = field(default_factory=list)


def child_runs(client, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=5000)
    newest: dict[str, object] = {}  # a job recorded twice (failed, then re-run): keep the latest
    for run in runs:
        newest[run.data.tags.get("dpo_exp.fingerprint", run.info.run_id)] = run
    return list(newest.values())


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def build(uri: str, parent_run_id: str, out_dir: Path | None = None) -> Summary:
    client = tracking.open_client(uri)
    runs = child_runs(client, parent_run_id)
    params = [run.data.params for run in runs]
    keys = sorted({k for p in params for k in p})
    varying = [k for k in keys if len({p.get(k) for p in params}) > 1 and not k.startswith(("paths.", "tracking."))]
    headline = behaviour_keys(runs)
    rows = []
    for run in runs:
        end = run.info.end_time or run.info.start_time
        row = {"run": run.info.run_name, "run_id": run.info.run_id, "status": run.info.status,
               **{k: run.data.params.get(k, "") for k in varying},
               "minutes": round((end - run.info.start_time) / 60000, 2)}
        for metric, column in COLUMNS:
            row[column] = run.data.metrics.get(metric, float("nan"))
        row["error"] = run.data.tags.get("dpo_exp.error", "") if run.info.status != "FINISHED" else ""
        for key in headline:
            for when in ("before", "after"):
                row[f"{key} {when}"] = run.data.metrics.get(f"heldout/{when}/{key}", float("nan"))
        rows.append(row)
    header = ["run", *varying, "status", *[c for _, c in COLUMNS], *[f"{k} after" for k in headline], "minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(r[h]) for h in header) + " |" for r in rows]
    failed = [r for r in rows if r["status"] != "FINISHED"]
    if failed:  # which jobs, and why, in the words of their error
        lines += ["", f"Not finished ({len(failed)} of {len(rows)}):"]
        lines += [f"- {r['run']}: {r['status']}: {(r['error'] or 'no error recorded').splitlines()[0][:400]}"
                  for r in failed]
    markdown = "\n".join(lines) + "\n"
    seeds = over_seeds(rows, varying, headline)
    if seeds:
        markdown += "\n" + seeds
    summary = Summary(rows=rows, varying=varying, markdown=markdown)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.md").write_text(summary.markdown)
        with open(out_dir / "summary.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["run_id", *header, "error"])
            writer.writeheader()
            writer.writerows({k: r[k] for k in ["run_id", *header, "error"]} for r in rows)
        summary.files = [out_dir / "summary.md", out_dir / "summary.csv", *plot(client, runs, rows, varying, out_dir)]
    return summary


def behaviour_keys(runs) -> list[str]:
    """The behaviour metrics' headline keys the runs name (in order of first appearance)."""
    keys: list[str] = []
    for run in runs:
        for key in filter(None, run.data.tags.get(tracking.TAG_HEADLINE, "").split(",")):
            if key not in keys:
                keys.append(key)
    return keys


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
    return mean, sd


def over_seeds(rows: list[dict], varying: list[str], keys: list[str]) -> str:
    """When the sweep varies `train.seed`: per setting of the other varying keys, each headline rate's mean
    and sample standard deviation over the finished seeds, before -> after and the change. "" otherwise."""
    if SEED_KEY not in varying or not keys:
        return ""
    others = [k for k in varying if k != SEED_KEY]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["status"] == "FINISHED":
            groups.setdefault(tuple(row[k] for k in others), []).append(row)
    if not groups:
        return ""
    header = [*others, "seeds", *[f"{k}: before -> after (change)" for k in keys]]
    lines = ["Over seeds: mean +- sample sd of the finished runs (held-out, greedy).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for setting, members in groups.items():
        cells = [*map(str, setting), str(len(members))]
        for key in keys:
            before, _ = _mean_sd([m[f"{key} before"] for m in members])
            after, after_sd = _mean_sd([m[f"{key} after"] for m in members])
            change, change_sd = _mean_sd([m[f"{key} after"] - m[f"{key} before"] for m in members])
            cells.append(f"{_fmt(before)} -> {_fmt(after)} +- {_fmt(after_sd)} ({change:+.3f} +- {_fmt(change_sd)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(client, runs, rows: list[dict], varying: list[str], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    x_key = "beta.value" if "beta.value" in varying else (varying[0] if varying else None)
    line_key = "train.learning_rate" if "train.learning_rate" in varying and x_key != "train.learning_rate" else None
    done = [r for r in rows if r["status"] == "FINISHED"]
    if x_key and done:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        groups = sorted({r.get(line_key, "") for r in done}) if line_key else [""]
        for group in groups:
            pts = sorted(((_num(r[x_key]), r) for r in done if not line_key or r[line_key] == group),
                         key=lambda t: t[0])
            label = f"{line_key.split('.')[-1]}={group}" if line_key else None
            axes[0].plot([p[0] for p in pts], [p[1]["eval margin"] for p in pts], marker="o", label=label)
            axes[1].plot([p[0] for p in pts], [p[1]["eval acc"] for p in pts], marker="o", label=label)
        for ax, title in zip(axes, ("eval reward margin", "eval reward accuracy")):
            ax.set_xlabel(x_key)
            ax.set_title(title)
            if x_key == "beta.value":
                ax.set_xscale("log")
            if line_key:
                ax.legend()
        fig.tight_layout()
        files.append(_save(fig, out_dir / f"margin_accuracy_vs_{x_key.split('.')[-1]}.png"))
    if done:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for r in done:
            ax.scatter(r["KL"], r["eval margin"])
            ax.annotate(r["run"], (r["KL"], r["eval margin"]), fontsize=7)
        ax.set_xlabel("KL(policy || reference), nats/sequence")
        ax.set_ylabel("eval reward margin")
        ax.set_title("KL vs reward frontier")
        fig.tight_layout()
        files.append(_save(fig, out_dir / "kl_reward_frontier.png"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        # Label by what differs between jobs, not the full run name.
        label = " ".join(f"{k.removesuffix('.value').split('.')[-1]}={run.data.params.get(k)}" for k in varying)
        for ax, key in zip(axes, ("rewards/margins", "eval_rewards/margins")):
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            if history:
                ax.plot([m.step for m in history], [m.value for m in history], label=label or run.info.run_name)
    for ax, title in zip(axes, ("train reward margin", "eval reward margin")):
        ax.set_xlabel("step")
        ax.set_title(title)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out_dir / "training_curves.png"))
    return files


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
