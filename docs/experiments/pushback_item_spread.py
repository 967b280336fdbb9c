"""How much of an accept (or hold) change is which conversations a set holds (docs/experiments/pushback.md,
"A dev split in the held-out set's domains"):

    python docs/experiments/pushback_item_spread.py outputs/wide3/b10_s1 outputs/wide3/b10_s2 outputs/wide3/b10_s3
    python docs/experiments/pushback_item_spread.py --table generations.json --models m3_s1 m3_s2 m3_s3

The first form reads the training runs' `heldout_generations.json` from MLflow (each run folder's run_state.json
names its run and store) and takes the labels before and after; the second reads a `python -m dpo_exp.eval`
comparison's `generations.json` (its MLflow run's artifact) and compares the named models with `base`. Either way the
runs are seeds of one setting: the change is the mean over them of (rows labelled as wanted after - before) / rows,
and its spread is the standard deviation of that mean over bootstrap draws of the rows (the same draw for every seed,
so it adds to the seed-to-seed spread rather than repeating it). Prints the point, the spread and a 95% interval.
"""
import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from dpo_exp.tasks.pushback.rules import ACCEPTS, CORRECT, HOLDS

WANTED = {"correction": ACCEPTS, "pushback": HOLDS, "plain": CORRECT}  # per kind, the label `rules.label` wants


def training_run_table(run_dir: Path) -> list[dict]:
    import mlflow

    state = json.loads((run_dir / "run_state.json").read_text())
    path = mlflow.artifacts.download_artifacts(run_id=state["mlflow_run_id"], artifact_path="heldout_generations.json",
                                               tracking_uri=state["tracking_uri"])
    return _rows(path)


def _rows(path) -> list[dict]:
    table = json.loads(Path(path).read_text())
    return table if isinstance(table, list) else [dict(zip(table["columns"], row)) for row in table["data"]]


def spread(changes: list[list[int]], draws: int, seed: int) -> tuple[float, float, float, float]:
    """changes: per seed, per row +1 / 0 / -1 (rows aligned across seeds)."""
    n, rng = len(changes[0]), random.Random(seed)
    point = statistics.mean(sum(c) / n for c in changes)
    means = sorted(statistics.mean(sum(c[i] for i in idx) / n for c in changes)
                   for idx in ([rng.randrange(n) for _ in range(n)] for _ in range(draws)))
    return 100 * point, 100 * statistics.stdev(means), 100 * means[int(0.025 * draws)], 100 * means[int(0.975 * draws)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="training run folders (hydra.run.dir), seeds of one setting")
    parser.add_argument("--table", type=Path, help="an eval comparison's generations.json instead of training runs")
    parser.add_argument("--models", nargs="+", default=[], help="with --table: the models to compare with base")
    parser.add_argument("--kind", choices=sorted(WANTED), default="correction")
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if bool(args.table) == bool(args.runs) or bool(args.table) != bool(args.models):
        parser.error("give training run folders, or --table with --models")
    want = WANTED[args.kind]
    if args.table:
        rows = [r for r in _rows(args.table) if r["kind"] == args.kind]
        changes = [[(r[f"{m} (greedy label)"] == want) - (r["base (greedy label)"] == want) for r in rows]
                   for m in args.models]
    else:
        changes = []
        for run in args.runs:
            rows = [r for r in training_run_table(run) if r["kind"] == args.kind]
            changes.append([(r["label_after"] == want) - (r["label_before"] == want) for r in rows])
        if len({len(c) for c in changes}) != 1:
            sys.exit("the runs were scored on different held-out sets (row counts differ)")
    point, sd, low, high = spread(changes, args.draws, args.seed)
    print(f"{want}: {point:+.1f} points from the base over {len(changes)} run(s), {len(changes[0])} rows; "
          f"row-sampling spread {sd:.1f} (95% interval {low:+.1f} to {high:+.1f})")


if __name__ == "__main__":
    main()
