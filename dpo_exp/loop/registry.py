"""The loop's models in MLflow's model registry, and their lineage.

Every candidate (and, in round 1, the starting model) becomes a version of one registered model
(`loop.model_name`), whose source is the adapter artifact of the run that made it (`runs:/<run id>/adapter`).
The alias `champion` points at the current champion and moves only when a candidate passes the gate.

A version's tags (prefix `dpo_exp.loop.`) are its lineage, one hop each: `round`, `parent_version` (the champion
it was sampled from and trained on), `pairs` / `data_digest` / `n_pairs` (its training pairs, also the train
run's dataset input), `generator` (the model that wrote the replies), `judge`, `build_run`, `train_run`,
`gate_run`, `verdict` and `gate` (the numbers), `promoted_at`, and `run` (the loop's parent MLflow run).
Registration is idempotent: a version is found again by (loop run, round) before one is created, so a resumed
loop never registers a candidate twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

TAG = "dpo_exp.loop."
CHAMPION = "champion"


def client(uri: str):
    from dpo_exp import tracking

    return tracking.open_client(uri)


def ensure_model(c, name: str, experiment: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        try:
            c.create_registered_model(name, tags={TAG + "experiment": experiment}, description=(
                f"Champions and candidates of `python -m dpo_exp.loop` (experiment {experiment}). Alias "
                f"`{CHAMPION}`: the current champion. Lineage: python -m dpo_exp.report lineage models:/{name}@champion"))
        except MlflowException:  # created meanwhile
            pass


def find_version(c, name: str, loop_run: str, round_: int):
    found = c.search_model_versions(f"name='{name}' and tags.`{TAG}run` = '{loop_run}' "
                                    f"and tags.`{TAG}round` = '{round_}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def register(c, name: str, run_id: str, loop_run: str, round_: int, tags: dict[str, str]):
    """The version of this loop's round, created once (its source: the run's `adapter` artifact)."""
    existing = find_version(c, name, loop_run, round_)
    if existing is not None:
        for k, v in tags.items():
            c.set_model_version_tag(name, existing.version, TAG + k, str(v))
        return c.get_model_version(name, existing.version)
    all_tags = {TAG + "run": loop_run, TAG + "round": str(round_), **{TAG + k: str(v) for k, v in tags.items()}}
    return c.create_model_version(name, f"runs:/{run_id}/adapter", run_id=run_id, tags=all_tags)


def set_tags(c, name: str, version: str, tags: dict[str, str]) -> None:
    for k, v in tags.items():
        c.set_model_version_tag(name, str(version), TAG + k, str(v))


def promote(c, name: str, version: str) -> str:
    """Move `champion` to `version`; returns when (recorded as its `promoted_at` tag)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    c.set_registered_model_alias(name, CHAMPION, str(version))
    set_tags(c, name, version, {"promoted_at": when})
    return when


def champion_version(c, name: str) -> str | None:
    aliases = c.get_registered_model(name).aliases or {}
    return str(aliases[CHAMPION]) if CHAMPION in aliases else None


@dataclass
class Hop:
    """One version of a lineage chain, with what made it."""

    version: str
    tags: dict[str, str]
    created: str
    aliases: list[str]
    run_id: str | None

    def tag(self, key: str, default: str = "-") -> str:
        return self.tags.get(TAG + key, default)


def chain(uri: str, spec: str, key: str = "lineage") -> tuple[str, list[Hop]]:
    """(model name, [the version `spec` names, its parent version, ... back to the starting model])."""
    from dpo_exp import adapters

    c = client(uri)
    v = adapters.registered_version(key, spec, uri)
    name, hops, seen = v.name, [], set()
    while v is not None and v.version not in seen:
        seen.add(v.version)
        hops.append(Hop(str(v.version), dict(v.tags),
                        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(v.creation_timestamp / 1000)),
                        list(v.aliases or []), v.run_id or None))
        parent = v.tags.get(TAG + "parent_version")
        v = c.get_model_version(name, parent) if parent and parent != "-" else None
    return name, hops
