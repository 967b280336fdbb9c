"""`python -m dpo_exp.loop`: iterative on-policy DPO with a quality gate, a model registry and lineage.

    python -m dpo_exp.loop +experiment=NAME                 # a loop experiment (conf/loop_only/experiment/)
    python -m dpo_exp.loop +experiment=NAME +debug=smoke    # the same code path, tiny model, ~30 s
    python -m dpo_exp.loop +experiment=NAME loop.rounds=3 loop.reference=champion
    python -m dpo_exp.report lineage models:/MODEL@champion # what made the champion (MODEL: loop.model_name)

README, "The loop", runs the shipped flagship task this way.

Configured by Hydra (`conf/loop.yaml`: training's groups, the build's `build=NAME`, and `loop.*`;
`dpo_exp/loop/schema.py`). The recipe, top to bottom; each stage is a function of `dpo_exp.loop.stages`:

    0. compose and check: config, the behaviour metric and the gate's    schema.to_object, stages.prepare
       metric names, dev and held-out rows, prompts, judge, start model
       the loop's record: directory, run_state.json, parent MLflow run    runs.open_run (new, or resumed)
    round r = 1 .. loop.rounds, each stage a child MLflow run:
    1. start (round 1): the starting model -> version 1, alias champion  stages.register_start
    2. collect: the prompts of the round, less the dev split's topics    stages.collect
    3. build: the champion's replies, judged in both orders, pairs       stages.build_pairs (dpo_exp.data.build)
    4. train: DPO on the round's (or all) pairs -> the candidate          stages.train_candidate (dpo_exp.train)
    5. gate: candidate vs champion on the dev split (loop.gate)          stages.gate (loop.gate.decide)
    6. promote: the candidate registered; `champion` moves on a pass     stages.promote (loop.registry)
    7. held-out: the candidate on the held-out set, for the report only  stages.heldout
    end: the final champion's held-out numbers, the per-round table and plot on the parent run (loop.report)

A gate failure registers the candidate with verdict `fail` and the reasons; the champion stays, and
`loop.on_fail` says whether the next round runs (`continue`, from the same champion) or the loop ends (`stop`).

Resuming: `resume` is true by default in `conf/loop.yaml`, so running the same command again continues the
newest unfinished loop of this config (`resume=false` starts a new one): finished stages are skipped
(`<loop dir>/loop_state.json`), a killed build continues from its cache, a killed training from its last
checkpoint in the same child run, and a version is never registered twice. A finished loop is reported again.
"""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dpo_exp import config, runs
from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.config import UserError
from dpo_exp.loop import schema, stages


def run(cfg: DictConfig) -> dict:
    from dpo_exp import tracking

    overrides = list(HydraConfig.get().overrides.task)
    job = runs.Job.from_hydra(cfg, app="dpo_exp.loop", name="loop " + config.describe_overrides(overrides))
    # 0. everything the user gave, checked before any model loads or any run is recorded
    conf = schema.to_object(cfg)
    runs.open_store(job.uri, job.outputs)  # the store checked; runs a dead process left RUNNING marked KILLED
    loop = stages.prepare(conf, cfg, job)
    previous = runs.previous_run(job)
    if previous and previous.finished:
        runs.skip_finished(job, previous)
        summary = previous.state.summary or {}
        print_summary(summary)
        return summary
    log(f"MLflow: {job.uri} (experiment '{conf.tracking.experiment}'); registered model '{conf.loop.model_name}'")

    with runs.open_run(job, conf, cfg, previous) as parent:
        loop.parent = parent
        loop.state = stages.State.load(parent.dir)
        if loop.state.judge not in (None, loop.judge.name):
            raise UserError(f"The loop in {parent.dir} was built with the judge {loop.state.judge!r}, not "
                            f"{loop.judge.name!r}: its rounds would mix two judges. Fix: run it with its judge, or "
                            "start a new loop with resume=false.")
        loop.state.judge = loop.judge.name
        tracking.set_tags({"dpo_exp.role": "loop", "dpo_exp.loop.model_name": loop.name})
        log(f"loop '{job.run_name}' -> {parent.dir}" + (" (resumed)" if previous else ""))

        for r in range(1, conf.loop.rounds + 1):
            if loop.state.stopped:
                break
            if r == 1:
                loop.stage(r, "start", stages.register_start)           # 1. version 1 = the starting model
            loop.stage(r, "collect", stages.collect)                    # 2. the round's prompts
            loop.stage(r, "build", stages.build_pairs)                  # 3. the champion's replies, judged, paired
            loop.stage(r, "train", stages.train_candidate)              # 4. DPO -> the candidate
            verdict = loop.stage(r, "gate", stages.gate)                # 5. candidate vs champion on dev
            loop.stage(r, "promote", stages.promote)                    # 6. registered; champion moves on a pass
            if conf.loop.heldout_every_round:
                loop.stage(r, "heldout", stages.heldout)                # 7. held-out, for the report only
            if not verdict["passed"] and conf.loop.on_fail == "stop" and r < conf.loop.rounds:
                loop.state.stopped = f"round {r}'s candidate failed the gate and loop.on_fail=stop"
                loop.save()
                log(f"stopping: {loop.state.stopped}")

        # end: the final champion on the held-out set, and the per-round report on the parent run
        summary = finish(loop)
        parent.summary = summary
    print_summary(summary)
    return summary


def finish(loop: stages.Loop) -> dict:
    from dpo_exp import tracking
    from dpo_exp.loop import report

    conf, state = loop.conf, loop.state
    champion = state.champion
    final = stages.evaluate(loop, list(dict.fromkeys([stages.START, champion])), "heldout") if loop.heldout else {}
    target = conf.loop.gate.metric
    rows = report.rounds_table(state, loop.metric, target)
    files = report.write_report(rows, target, f"Loop {loop.name}: rounds", loop.dir / "report")
    for f in files:
        tracking.log_artifact(f)
    for row in rows:
        tracking.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "round"
                              and v is not None}, step=row["round"])
    start_held = final.get(stages.START, {}).get("metrics", {})
    champ_held = final.get(champion, {}).get("metrics", {})
    tracking.log_metrics({**{f"final/heldout/start/{k}": v for k, v in start_held.items() if v == v},
                          **{f"final/heldout/champion/{k}": v for k, v in champ_held.items() if v == v}}, step=0)
    version = state.models[champion]["version"]
    tracking.set_tags({"dpo_exp.loop.champion_version": str(version)})
    return {"run_id": loop.parent.mlflow_run_id, "run_dir": str(loop.dir), "model_name": loop.name,
            "champion_version": version, "uri": loop.job.uri, "stopped": state.stopped,
            "headline": [list(h) for h in loop.metric.headline], "metric": loop.metric.name,
            "heldout_start": start_held, "heldout_champion": champ_held,
            "report": str(loop.dir / "report" / "loop_report.md"), "table": report.markdown(rows, target, "rounds")}


def print_summary(summary: dict) -> None:
    if not summary:
        return
    start, champ = summary.get("heldout_start", {}), summary.get("heldout_champion", {})
    print("\n== dpo_exp loop summary ==")
    print(summary.get("table", ""))
    if summary.get("stopped"):
        print(f"stopped early: {summary['stopped']}")
    print(f"champion: models:/{summary['model_name']}/{summary['champion_version']} "
          f"(models:/{summary['model_name']}@champion)")
    shown = [(k, d) for k, d in summary.get("headline", []) if k in champ]
    if shown:
        print(f"held-out {summary.get('metric')} (starting model -> champion): " + "; ".join(
            f"{d} {start.get(k, float('nan')):.3f} -> {champ[k]:.3f}" for k, d in shown))
    print(f"report: {summary.get('report')}   loop dir: {summary.get('run_dir')}")
    print(f"MLflow parent run {summary.get('run_id')} in {summary.get('uri')}")
    print(f"lineage: python -m dpo_exp.report lineage models:/{summary['model_name']}@champion "
          f"--tracking-uri {summary.get('uri')}\n", flush=True)


@hydra_app("loop")
def main(cfg: DictConfig) -> None:
    run(cfg)


schema.register()

if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.loop", validate=schema.to_object)
