"""`python -m dpo_exp.label`: people label preference pairs; export, agreement, judge vs human.

    python -m dpo_exp.label data=file data.path=pairs.jsonl                        # the page, http://127.0.0.1:7860
    python -m dpo_exp.label data=file data.path=pairs.jsonl label.overlap=2 label.host=0.0.0.0 label.auth=users.txt
    python -m dpo_exp.label data=file data.path=pairs.jsonl label.action=export    # -> labeled_pairs.jsonl + agreement
    python -m dpo_exp.label data=file data.path=pairs.jsonl label.action=judge judge=openai judge.base_url=URL ...
    python -m dpo_exp.label label.mode=arena label.arena.b=outputs/dpo_exp/<date>        # base vs a trained adapter

One command, three actions (`label.action`), all on the same pairs file and label database (`label.db`);
`label.mode=arena` (dpo_exp.label.arena) serves and exports pairs that two models write for prompts the
annotators type. The steps:

1. check every input before anything starts: the config, the pairs file (read as training reads it; a bad
   row is an error naming its line), the database (made for this file: its digest), the users file, the port;
2. `serve`: the labeling page until Ctrl-C (no MLflow run: the database is the record);
   `export`: majority votes -> a preference file that trains (`data=file data.path=<out>`), with the
   agreement report; `judge`: the judge plug-in against the people. Both log an MLflow run in
   `<tracking.experiment>-labels` through `dpo_exp.runs`, with the pairs file as a dataset input.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dpo_exp import runs, tracking
from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.label import schema
from dpo_exp.label.schema import Action, Mode

schema.register()


@hydra_app("label")
def main(cfg: DictConfig) -> None:
    from dpo_exp import config
    from dpo_exp.label import items, store

    # 1. inputs, cheapest first
    arena = cfg.label.mode in ("arena", Mode.arena)
    if arena and OmegaConf.is_missing(cfg.data, "path"):
        cfg.data.path = "arena"  # arena mode reads no pairs file
    conf = schema.to_object(cfg)
    lc = conf.label
    source = "arena" if arena else Path(str(conf.data.path)).name
    job = runs.Job.from_hydra(cfg, app="dpo_exp.label", name=f"label {lc.action.value} {source}")
    users = None
    if lc.action == Action.serve:
        from dpo_exp.label import app

        users = app.read_users(lc.auth) if lc.auth else None
        app.check_port(lc.host, lc.port)
    if arena:
        from dpo_exp.label import arena as arena_mod

        pairs = items.Items(rows=[], digest=arena_mod.digest(conf), source="arena")
    else:
        pairs = items.load(conf.data)
    url = store.url_of(lc.db, job.outputs / "labels" / f"{source}.sqlite")
    db = store.Store.open(url, pairs)

    # 2. the action
    try:
        if lc.action == Action.serve:
            if lc.host not in ("127.0.0.1", "localhost", "::1") and not users:
                log(f"WARNING: label.host={lc.host} shares the page on your network without a login: anyone who "
                    "reaches it can label as anyone. Set label.auth=users.txt (name:password lines).")
            settings = app.Settings(overlap=lc.overlap, seed=lc.seed, dimensions=[str(d) for d in lc.dimensions],
                                    title=f"Labeling {Path(pairs.source).name}", reserve_minutes=lc.reserve_minutes)
            labeler = app.Labeler(db, settings)
            if arena:
                contenders = arena_mod.Contenders(conf, job.uri, job.run_dir / "adapter_download")
                page = arena_mod.arena_page(arena_mod.Arena(db, contenders), auth=bool(users), title="Arena")
                server = app.server_app(labeler, users, blocks=page)
                log(f"arena: {db.n_items} prompts voted so far, into {store.shown(url)}")
            else:
                server = app.server_app(labeler, users)
                log(f"labeling {len(pairs)} pairs of {pairs.source} (overlap {lc.overlap}) into {store.shown(url)}")
            shown_host = "127.0.0.1" if lc.host in ("0.0.0.0", "::") else lc.host
            log(f"open http://{shown_host}:{lc.port} (Ctrl-C stops; every submitted label is already saved)")
            app.serve(server, lc.host, lc.port)
            return
        runs.open_store(job.uri, job.outputs)
        experiment = f"{conf.tracking.experiment}-labels"
        if lc.action == Action.export:
            from dpo_exp.label import export

            with runs.tracked(job, experiment=experiment, params=config.flatten(cfg),
                              tags={"dpo_exp.kind": "label-export"}) as run_id:
                result = export.run(db, pairs, lc, job.run_dir)
            export.print_summary(result)
        else:
            from dpo_exp.label import versus

            judge = versus.make_judge(conf)
            with runs.tracked(job, experiment=experiment, params=config.flatten(cfg),
                              tags={"dpo_exp.kind": "label-judge"}) as run_id:
                report = versus.run(judge, db, pairs, lc, job.run_dir)
            versus.print_summary(report, job.run_dir)
        log(f"MLflow run {run_id} in experiment '{experiment}': {tracking.ui_command(job.uri)}")
    finally:
        db.close()


if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.label", validate=schema.checked)
