"""`python -m dpo_exp.report`: a sweep's summary rebuilt from MLflow (what it holds: dpo_exp.summary), or a
registered model version's lineage (what it holds: dpo_exp.loop.report).

    python -m dpo_exp.report <parent run id | sweep dir> [--tracking-uri URI] [--out DIR]
    python -m dpo_exp.report lineage models:/<name>@champion [--tracking-uri URI]    # or models:/<name>/<version>
    python -m dpo_exp.report loops NAME [NAME ...] [--tracking-uri URI]               # several loops, e.g. seeds

The first writes summary.md, summary.csv and the plots to DIR (default ./sweep_summary_<id>) and prints the
table. The second prints the chain from that version back to the loop's starting model: for each version the
pairs it was trained on (file, count, digest), the model that wrote them and the judge, the training config, the
gate's numbers and verdict, and when it was promoted. The third puts several loops' final champions side by side
(held-out, against each starting model) with the mean and spread: the flagship's 3 seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpo_exp import runs, summary, tracking
from dpo_exp.cli import run_command
from dpo_exp.config import UserError


def main() -> None:
    if sys.argv[1:2] == ["lineage"]:
        return lineage(sys.argv[2:])
    if sys.argv[1:2] == ["loops"]:
        return loops(sys.argv[2:])
    parser = argparse.ArgumentParser(description="Rebuild a sweep's summary from MLflow; `lineage models:/...`: a "
                                                 "registered version's lineage.")
    parser.add_argument("sweep", help="parent run id, or a sweep directory (multirun_*)")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    parser.add_argument("--out", default=None, help="output folder (default: ./sweep_summary_<id>)")
    args = parser.parse_args()
    built = rebuild(args.sweep, args.tracking_uri, args.out)
    print(built.markdown)
    print(f"written: {', '.join(str(f) for f in built.files)}")


def lineage(argv: list[str]) -> None:
    from dpo_exp.loop import report as loop_report

    parser = argparse.ArgumentParser(prog="python -m dpo_exp.report lineage",
                                     description="The lineage of a registered model version made by python -m dpo_exp.loop.")
    parser.add_argument("model", help="models:/<name>/<version> or models:/<name>@<alias> (e.g. @champion)")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    args = parser.parse_args(argv)
    print(loop_report.lineage_text(_store(args.tracking_uri), args.model))


def loops(argv: list[str]) -> None:
    from dpo_exp.loop import report as loop_report

    parser = argparse.ArgumentParser(prog="python -m dpo_exp.report loops",
                                     description="Several loops' final champions side by side, with mean and spread.")
    parser.add_argument("names", nargs="+", help="registered model names, one per loop (loop.model_name)")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    args = parser.parse_args(argv)
    print(loop_report.loops_text(_store(args.tracking_uri), args.names))


def _store(tracking_uri: str | None) -> str:
    uri = tracking.resolve_uri_from(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise UserError(f"There is no MLflow store at {uri} (no such file). Fix: run from the folder the loop ran in, "
                        "or pass --tracking-uri of the store it registered the model in.")
    return uri


def rebuild(sweep: str, tracking_uri: str | None, out: str | None) -> summary.Summary:
    from mlflow.exceptions import MlflowException

    uri = tracking.resolve_uri_from(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise UserError(f"There is no MLflow store at {uri} (no such file). Fix: run from the folder the sweep ran in, "
                        "or pass --tracking-uri of the store it logged to.")
    runs.open_store(uri, None)  # a sweep whose process was SIGKILLed: its parent and children are not RUNNING
    client = tracking.open_client(uri)
    parent = sweep
    if Path(parent).is_dir():
        wanted = str(Path(parent).resolve())
        found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                   filter_string=f"tags.`dpo_exp.sweep_dir` = '{wanted}'", max_results=1)
        if not found:
            raise UserError(f"No sweep parent run for {wanted} in {uri}. Fix: pass the parent run id, or "
                            "--tracking-uri of the store the sweep logged to.")
        parent = found[0].info.run_id
    else:
        try:
            run = client.get_run(parent)
        except MlflowException:
            raise UserError(f"{parent!r} is neither a sweep directory nor a run in the MLflow store {uri}. Fix: pass "
                            "a sweep's parent run id (printed as 'sweep: parent run <id>' when it started) or its "
                            "outputs/<experiment>/multirun_<date> folder, and --tracking-uri if the sweep logged "
                            "elsewhere.") from None
        if run.data.tags.get("dpo_exp.role") != "sweep":
            raise UserError(f"MLflow run {parent} ({run.info.run_name!r}) is not a sweep's parent run, so it has no "
                            "jobs to summarise. Fix: pass the parent run id printed when the sweep started, or the "
                            "sweep's multirun_<date> folder.")
    return summary.build(uri, parent, Path(out or f"sweep_summary_{parent[:8]}"))


if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.report", hydra_args=False)
