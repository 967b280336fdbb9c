"""`python -m dpo_exp.audit`: audit preference data before training on it (checks: dpo_exp.data.audit).

    python -m dpo_exp.audit data=file data.path=pairs.jsonl            # any format training reads
    python -m dpo_exp.audit +experiment=hh_rlhf data.path=hh.jsonl.gz  # that experiment's data, model, max_length

The same `data`, `model` (its tokenizer only) and `train.max_length`/`train.seed` keys as training, so it
audits exactly the split training would use; thresholds are `audit.<check>.warn/.error` (conf/audit.yaml).
Writes audit.md, audit.json and lengths.png to the run dir and an MLflow run in
`<tracking.experiment>-data`. Exit status 1 when a check is at severity error, 2 on bad input, else 0.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from dpo_exp import config
from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.config import UserError

config.register()


@hydra_app("audit")
def main(cfg: DictConfig) -> None:
    from dpo_exp import runs, tracking
    from dpo_exp.data import audit

    try:
        try:
            conf = config.to_object(cfg)
        except MissingMandatoryValue as e:
            raise UserError(f"{e.full_key} is not set. Fix: pass it, e.g. python -m dpo_exp.audit data=file "
                            "data.path=pairs.jsonl") from None
        uri = tracking.resolve_uri_from(conf.tracking.uri)
        tracking.check_store(uri)
        runs.reap(Path(conf.paths.outputs).expanduser().resolve(), uri)  # runs a SIGKILL left RUNNING: KILLED
        out_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
        report = audit.standalone(conf, out_dir)
    except UserError as e:
        print(f"\ndpo_exp: error: {e}\n", file=sys.stderr, flush=True)
        sys.exit(2)
    audit.print_table(report)
    command = "python -m dpo_exp.audit " + " ".join(shlex.quote(o) for o in HydraConfig.get().overrides.task)
    run_id = audit.log_standalone(conf, report, out_dir, uri=uri, command=command)
    log(f"audit: {report.severity} in {report.seconds:.1f} s; report in {out_dir} (audit.md, audit.json, lengths.png)")
    log(f"MLflow run {run_id} in experiment '{conf.tracking.experiment}-data': {tracking.ui_command(uri)}")
    if report.failed("error"):
        sys.exit(1)


if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.audit")
