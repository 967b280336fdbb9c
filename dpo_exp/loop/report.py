"""What the loop leaves to read: the per-round table and plot (parent run artifacts), and a version's lineage.

- `rounds_table` / `write_report`: per round the pairs built, the tie rate, the gate's dev numbers (champion ->
  candidate), the verdict and the version, and the held-out numbers (the report's only use of them); the plot
  shows the dev and held-out target per round, pairs per round and the tie rate. Written to
  `<loop dir>/report/` and logged to the parent run (`loop_report.md`, `loop_rounds.csv`, `loop_rounds.png`).
- `lineage_text`: `python -m dpo_exp.report lineage models:/<name>@champion`: the chain from a version back to the
  starting model, one block per version (its pairs and their digest, the model that wrote them, the judge, the
  training config, the gate's numbers, when it was promoted).
- `loops_text`: `python -m dpo_exp.report loops NAME...`: several loops (e.g. one per seed, each its own registered
  model) side by side: each final champion's held-out numbers against its starting model's, then the mean and
  the spread (sample standard deviation, and min..max) over the loops.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from dpo_exp.loop import registry


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def rounds_table(state, metric, target: str) -> list[dict]:
    """One row per round that got as far as its gate (the start is round 0), from the loop's state."""
    keys = [k for k, _ in getattr(metric, "headline", [])] or [target]
    start_heldout = state.evals.get("start", {}).get("heldout", {}).get("metrics", {})
    start_dev = state.evals.get("start", {}).get("dev", {}).get("metrics", {})
    rows = [{"round": 0, "version": state.models.get("start", {}).get("version"), "pairs": None, "tie_rate": None,
             "verdict": "start", "champion_after": state.models.get("start", {}).get("version"),
             f"dev_{target}_candidate": start_dev.get(target), f"dev_{target}_champion": None,
             **{f"heldout_{k}": start_heldout.get(k) for k in keys}}]
    for r in sorted(state.rounds, key=int):
        rnd = state.rounds[r]
        if "gate" not in rnd:
            continue
        g, b = rnd["gate"], rnd.get("build", {})
        held = state.evals.get(f"round{r}", {}).get("heldout", {}).get("metrics", {})
        rows.append({"round": int(r), "version": rnd.get("promote", {}).get("version"), "pairs": b.get("n_pairs"),
                     "tie_rate": b.get("tie_rate"), "verdict": g["verdict"],
                     "champion_after": rnd.get("promote", {}).get("champion_version"),
                     f"dev_{target}_candidate": g["candidate"].get(target),
                     f"dev_{target}_champion": g["champion"].get(target),
                     **{f"heldout_{k}": held.get(k) for k in keys}, "reasons": g["summary"]})
    return rows


def markdown(rows: list[dict], target: str, title: str) -> str:
    heads = [h for h in rows[0] if h != "reasons"] if rows else []
    lines = [f"# {title}", "", "| " + " | ".join(heads) + " |", "|" + "---:|" * len(heads)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(h)) for h in heads) + " |")
    lines += ["", f"Dev = the gate's split (target `{target}`); held-out = the report's only use of it (never gated on).",
              "", "## Gate verdicts", ""]
    lines += [f"- round {row['round']}: {row['reasons']}" for row in rows if row.get("reasons")]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], target: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(rounds, [_nan(r.get(f"dev_{target}_candidate")) for r in rows], "o-", label=f"dev {target} (candidate)")
    for key in [k for k in rows[0] if k.startswith("heldout_")]:
        ax.plot(rounds, [_nan(r.get(key)) for r in rows], "s--", label=key.replace("_", " ", 1))
    for r in rows[1:]:
        ax.annotate(r["verdict"], (r["round"], _nan(r.get(f"dev_{target}_candidate"))), fontsize=8,
                    textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("round (0 = starting model)")
    ax.set_title("dev and held-out per round")
    ax.legend(fontsize=7)
    axes[1].bar(rounds[1:], [r.get("pairs") or 0 for r in rows[1:]])
    axes[1].set_title("pairs per round")
    axes[1].set_xlabel("round")
    axes[2].plot(rounds[1:], [_nan(r.get("tie_rate")) for r in rows[1:]], "o-")
    axes[2].set_title("judge tie rate per round")
    axes[2].set_xlabel("round")
    for a in axes:
        a.set_xticks(rounds if a is axes[0] else rounds[1:])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(x) -> str:
    if isinstance(x, float):
        return _f(x)
    return "-" if x is None or x == "" else str(x)


def _nan(x):
    return math.nan if x is None else x


def write_report(rows: list[dict], target: str, title: str, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "loop_report.md"
    md.write_text(markdown(rows, target, title))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    table = folder / "loop_rounds.csv"
    table.write_text(buf.getvalue())
    png = folder / "loop_rounds.png"
    plot(rows, target, png)
    return [md, table, png]


# --- lineage --------------------------------------------------------------------------------------------


def lineage_text(uri: str, spec: str) -> str:
    """The chain of `spec` (models:/<name>/<version> or models:/<name>@<alias>) back to the starting model."""
    from dpo_exp import tracking

    name, hops = registry.chain(uri, spec)
    client = tracking.open_client(uri)
    out = [f"lineage of {spec} (registered model {name!r} in {uri})", ""]
    for hop in hops:
        aliases = f"  [@{', @'.join(hop.aliases)}]" if hop.aliases else ""
        out.append(f"version {hop.version}{aliases}: round {hop.tag('round')}, registered {hop.created}")
        if hop.tag("role") == "start":
            out.append(f"  the starting model: {hop.tag('start')} on base '{hop.tag('model')}' (run {hop.run_id})")
            out.append(f"  promoted {hop.tag('promoted_at')} (the first champion)")
            out.append("")
            continue
        out.append(f"  pairs:     {hop.tag('pairs')} ({hop.tag('n_pairs')} pairs, sha256 {hop.tag('data_digest')[:16]}; "
                   f"loop.data={hop.tag('data')})")
        out.append(f"  built by:  {hop.tag('generator')} (the champion then), judged by {hop.tag('judge')}, "
                   f"tie rate {hop.tag('tie_rate')} (build run {hop.tag('build_run')})")
        train = hop.tag("train_run")
        params = {}
        if train != "-":
            try:
                params = client.get_run(train).data.params
            except Exception:  # noqa: BLE001 - a deleted run: its id is still printed
                params = {}
        shown = ", ".join(f"{k}={params[k]}" for k in ("loss.type", "beta.value", "train.learning_rate",
                                                       "train.num_epochs", "train.max_steps", "train.seed", "lora.r")
                          if k in params)
        out.append(f"  trained:   from {hop.tag('init')}, reference {hop.tag('reference')}; {shown or 'config: see run'} "
                   f"(train run {train})")
        out.append(f"  gated:     {hop.tag('verdict')} against version {hop.tag('parent_version')}: {hop.tag('gate')} "
                   f"(gate run {hop.tag('gate_run')})")
        out.append(f"  promoted:  {hop.tag('promoted_at')}")
        out.append(f"  parent:    version {hop.tag('parent_version')}")
        out.append("")
    return "\n".join(out)


# --- several loops (seeds) --------------------------------------------------------------------------------


def loops_text(uri: str, names: list[str]) -> str:
    """Each loop's final champion vs its starting model on the held-out set, and mean +- sd over the loops."""
    import statistics

    from dpo_exp import adapters, tracking

    client = tracking.open_client(uri)
    per_loop = []
    for name in names:
        v = adapters.registered_version(f"loops {name}", f"models:/{name}@{registry.CHAMPION}", uri)
        run = client.get_run(v.tags[registry.TAG + "run"])
        m = run.data.metrics
        start = {k.removeprefix("final/heldout/start/"): x for k, x in m.items() if k.startswith("final/heldout/start/")}
        champ = {k.removeprefix("final/heldout/champion/"): x for k, x in m.items()
                 if k.startswith("final/heldout/champion/")}
        if not champ:
            from dpo_exp.config import UserError

            raise UserError(f"loops: the loop of registered model {name!r} (run {run.info.run_id}) has no final "
                            "held-out numbers: it has not finished, or it had no held-out set. Fix: run its command "
                            "again to finish it.")
        per_loop.append((name, str(v.version), run.info.run_id, start, champ))
    keys = [k for k in per_loop[0][4] if not k.startswith("n_") and all(k in c and k in s for _, _, _, s, c in per_loop)]
    lines = [f"held-out numbers of {len(per_loop)} loops (starting model -> final champion), store {uri}", "",
             "| loop | champion | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for name, version, _, start, champ in per_loop:
        lines.append(f"| {name} | v{version} | " + " | ".join(
            f"{start[k]:.3f} -> {champ[k]:.3f} ({champ[k] - start[k]:+.3f})" for k in keys) + " |")

    def spread(xs: list[float]) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):+.3f} +- {sd:.3f} [{min(xs):+.3f}..{max(xs):+.3f}]"

    lines.append("| **mean change +- sd [min..max]** | | " + " | ".join(
        spread([c[k] - s[k] for _, _, _, s, c in per_loop]) for k in keys) + " |")
    lines.append("| **mean champion** | | " + " | ".join(
        f"{statistics.mean([c[k] for *_, c in per_loop]):.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"
