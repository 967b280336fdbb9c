"""`python -m dpo_exp.audit`: audit preference data before training on it (checks: dpo_exp.data.audit).

    python -m dpo_exp.audit data=file data.path=pairs.jsonl            # any format training reads
    python -m dpo_exp.audit +experiment=hh_rlhf data.path=hh.jsonl.gz  # that experiment's data, model, max_length

The same `data`, `model` (its tokenizer only) and `train.max_length`/`train.seed` keys as training, so it
audits exactly the split training would use; thresholds are `audit.<check>.warn/.error` (conf/audit.yaml).
Writes audit.md, audit.json and lengths.png to the run dir and an MLflow run in
`<tracking.experiment>-data`. Exit status 1 when a check is at severity error, 2 on bad input, else 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from dpo_exp import config, runs, tracking
from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.config import UserError

config.register()


@hydra_app("audit")
def main(cfg: DictConfig) -> None:
    from dpo_exp.data import audit

    try:
        conf = config.to_object(cfg)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} is not set. Fix: pass it, e.g. python -m dpo_exp.audit data=file "
                        "data.path=pairs.jsonl") from None
    job = runs.Job.from_hydra(cfg, app="dpo_exp.audit", name=f"audit {Path(str(conf.data.path)).name}")
    runs.open_store(job.uri, job.outputs)  # the store checked; runs a dead process left RUNNING marked KILLED
    experiment = f"{conf.tracking.experiment}-data"
    # Open before the work: a killed audit is visible (RUNNING, then KILLED), one that fails is FAILED with why.
    with runs.tracked(job, experiment=experiment, params=audit.standalone_params(conf),
                      tags={"dpo_exp.kind": "audit"}) as run_id:
        report = audit.standalone(conf, job.run_dir)
        audit.log_to_active_run(report, job.run_dir, artifact_path=None)
    audit.print_table(report)
    log(f"audit: {report.severity} in {report.seconds:.1f} s; report in {job.run_dir} (audit.md, audit.json, "
        "lengths.png)")
    log(f"MLflow run {run_id} in experiment '{experiment}': {tracking.ui_command(job.uri)}")
    if report.failed("error"):
        sys.exit(1)


if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.audit")
