"""Where a trained adapter comes from: a folder, a dpo_exp run directory, an MLflow run or a registered model.

The one resolver of every place that loads an adapter next to a base model (`python -m dpo_exp.eval`'s
`eval_models.*`, hence stage=sft_dpo's three-way comparison; `python -m dpo_exp.build`'s `build.adapter`;
`python -m dpo_exp.loop`'s `loop.start`). A source is one of

- an adapter folder (a run's `adapter/` or `sft_adapter/`, with adapter_config.json);
- a dpo_exp run directory (`outputs/<experiment>/<date>`): its `adapter/` folder is used;
- `runs:/<run id>[/<artifact path>]` or a bare 32-hex MLflow run id: the run's `adapter`
  artifact (or the path given) is downloaded;
- `models:/<name>/<version>` or `models:/<name>@<alias>`: a version of an MLflow registered model (the
  loop registers one per round, alias `champion`), looked up with MLflow's own registry client
  (`MlflowClient.get_model_version` / `get_model_version_by_alias`); its source artifacts are downloaded.

Everything here fails with a UserError naming the config key before any model is loaded.
Importing this module stays cheap (mlflow and transformers are imported inside the functions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dpo_exp.config import UserError

ADAPTER_ARTIFACT = "adapter"
RUN_ID = re.compile(r"[0-9a-f]{32}")
MODEL_URI = re.compile(r"models:/([^/@]+)(?:/([^/@]+)|@([^/@]+))/?")


@dataclass
class Source:
    name: str
    spec: str  # as given on the command line
    path: Path  # the adapter folder (downloaded for an MLflow run)
    run_id: str | None = None
    key: str = ""  # the config key that named it, for messages; "" = eval_models.<name>
    model_version: str | None = None  # "<name>/<version>" when it came from the model registry

    @property
    def where(self) -> str:
        return f"{self.key or f'eval_models.{self.name}'}={self.spec}"


def resolve(name: str, spec: str, uri: str, download_dir: Path, key: str = "") -> Source:
    """One adapter source as a checked local folder; an MLflow run's adapter is downloaded into `download_dir`."""
    spec = str(spec).strip()
    key = key or f"eval_models.{name}"
    local = Path(spec).expanduser()
    run = re.fullmatch(r"runs:/([^/]+)/?(.*)", spec)
    if spec.startswith("models:/"):
        version = registered_version(key, spec, uri)
        path = _download_version(key, version, uri, download_dir)
        source = Source(name, spec, path, version.run_id or None, key, f"{version.name}/{version.version}")
    elif run or (RUN_ID.fullmatch(spec) and not local.exists()):  # a local folder wins over a run id
        run_id, artifact = (run.group(1), run.group(2).strip("/")) if run else (spec, "")
        path = _download_adapter(key, run_id, artifact or ADAPTER_ARTIFACT, uri, download_dir)
        source = Source(name, spec, path, run_id, key)
    else:
        if not (local / "adapter_config.json").is_file() and (local / ADAPTER_ARTIFACT / "adapter_config.json").is_file():
            local = local / ADAPTER_ARTIFACT  # a run directory: its adapter
        source = Source(name, spec, local, key=key)
    check_folder(source)
    return source


def _download_adapter(key: str, run_id: str, artifact: str, uri: str, dest: Path) -> Path:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from dpo_exp import tracking
    from dpo_exp.cli import log

    client = tracking.open_client(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise UserError(f"{key}: there is no MLflow run {run_id!r} in {uri}. Fix: copy the run id from "
                        "the training summary or the MLflow UI, point tracking.uri (or MLFLOW_TRACKING_URI) at the "
                        "store that holds it, or pass the adapter folder instead.") from None
    folder = str(Path(artifact).parent) if "/" in artifact else None
    try:
        listed = [a.path for a in client.list_artifacts(run_id, folder)]
    except MlflowException:
        listed = []
    if artifact not in listed:
        raise UserError(f"{key}: MLflow run {run_id} has no '{artifact}' artifact (it has: "
                        f"{', '.join(listed) or 'none'}); runs with tracking.log_adapter=false do not upload one. "
                        "Fix: pass the adapter folder from the run's directory (its tag dpo_exp.run_dir) instead.")
    dest.mkdir(parents=True, exist_ok=True)
    log(f"downloading the adapter of MLflow run {run_id} ({key}) ...")
    return Path(download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(dest), tracking_uri=uri))


def registered_version(key: str, spec: str, uri: str):
    """The MLflow ModelVersion `models:/<name>/<version>` or `models:/<name>@<alias>` names, through MLflow's own
    registry client; an unknown name, version or alias is a UserError listing what exists."""
    from mlflow.exceptions import MlflowException

    from dpo_exp import tracking

    m = MODEL_URI.fullmatch(spec)
    if not m:
        raise UserError(f"{key}={spec}: not a registered-model URI. Fix: write models:/<name>/<version> (e.g. "
                        "models:/my_model/3) or models:/<name>@<alias> (e.g. models:/my_model@champion).")
    name, number, alias = m.groups()
    client = tracking.open_client(uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        known = sorted(r.name for r in client.search_registered_models(max_results=100))
        raise UserError(f"{key}={spec}: there is no registered model {name!r} in the MLflow store {uri} (it has: "
                        f"{', '.join(known) or 'none'}). Fix: use one of those names, or point tracking.uri (or "
                        "MLFLOW_TRACKING_URI) at the store the loop registered it in.") from None
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, number)
    except MlflowException:
        what = f"alias {alias!r}" if alias is not None else f"version {number!r}"
        aliases = ", ".join(f"@{a} = {v}" for a, v in sorted((model.aliases or {}).items())) or "no aliases"
        raise UserError(f"{key}={spec}: the registered model {name!r} has no {what} (versions: "
                        f"{', '.join(map(str, versions)) or 'none'}; {aliases}). Fix: name one of those, e.g. "
                        f"models:/{name}/{versions[-1] if versions else 1} or models:/{name}@champion.") from None


def _download_version(key: str, version, uri: str, dest: Path) -> Path:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from dpo_exp.cli import log

    dest.mkdir(parents=True, exist_ok=True)
    log(f"downloading registered model {version.name} version {version.version} ({key}) from {version.source} ...")
    try:
        return Path(download_artifacts(artifact_uri=version.source, dst_path=str(dest), tracking_uri=uri))
    except (MlflowException, OSError) as e:
        raise UserError(f"{key}: the artifacts of registered model {version.name} version {version.version} "
                        f"({version.source}) cannot be downloaded: {str(e)[:300]}. Fix: check that the run that logged "
                        "them still exists in this store (it may have been deleted), or register another version."
                        ) from None


def check_folder(s: Source) -> None:
    if not s.path.is_dir():
        raise UserError(f"{s.where}: no such adapter folder ({s.path.resolve()}). Fix: pass the `adapter` folder of a "
                        "training run (outputs/<experiment>/<date>/adapter), the run directory, `runs:/<run id>`, a "
                        "bare MLflow run id, or a registered model: models:/<name>/<version> or models:/<name>@<alias>.")
    if not (s.path / "adapter_config.json").is_file():
        full = (s.path / "config.json").is_file()
        raise UserError(f"{s.where}: {s.path} is not a PEFT adapter folder (no adapter_config.json)"
                        + (": it holds a full model (a lora=none run), which is not loaded as an "
                           "adapter. Fix: use it as the base, with model=local model.path=" + str(s.path)
                           if full else ". Fix: pass the `adapter` folder a training run saved.") + ".")


def check_tokenizer(tokenizer, sources: list[Source]) -> None:
    """An adapter saved with a different tokenizer was trained on a different base (e.g. another tiny
    model, whose tokenizer is trained on the run's data): its outputs would be meaningless."""
    from transformers import AutoTokenizer

    vocab = tokenizer.get_vocab()
    for s in sources:
        if not any((s.path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
            continue
        if AutoTokenizer.from_pretrained(str(s.path)).get_vocab() != vocab:
            raise UserError(f"{s.key or f'eval_models.{s.name}'}: the tokenizer saved with the adapter in {s.path} "
                            "differs from the base model's, so it was trained on another base (or, for model=tiny, "
                            "on other data). Fix: pass the model, data and +debug/+experiment overrides the adapter "
                            "was trained with.")
