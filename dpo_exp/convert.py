"""`python -m dpo_exp.convert`: preference data from one layout to another (dpo_exp.data.convert).

    python -m dpo_exp.convert data.path=hh.jsonl.gz out.path=hh_sharegpt.jsonl out.format=sharegpt
    python -m dpo_exp.convert data.path=pairs.jsonl out.path=pairs_pref.jsonl out.format=preference out.flatten=true

Input: the `data` keys of training (path, format, split, where, on_error, system_prompt; every row of
data.path, in order: the split keys eval_path and max_rows are not used); output:
`out.path`, `out.format` (default conversational), `out.overwrite`, `out.flatten` (conf/convert.yaml).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.config import UserError
from dpo_exp.data import convert as data_convert

data_convert.register()


@hydra_app("convert")
def main(cfg: DictConfig) -> None:
    try:
        conf = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} is not set. Fix: pass it, e.g. python -m dpo_exp.convert "
                        "data.path=in.jsonl out.path=out.jsonl out.format=sharegpt") from None
    unused = [k for k in ("eval_path", "max_rows") if getattr(conf.data, k) is not None]
    if unused:  # training's split keys: convert takes all of data.path, in order
        log(f"note: {', '.join(f'data.{k}' for k in unused)} not used: convert writes every row of data.path")
    result = data_convert.convert(conf.data, conf.out)
    log(f"converted {result.rows} rows of {conf.data.path} (format {result.source_format.value}) to {conf.out.path} "
        f"(format {conf.out.format.value})"
        + (f"; {result.skipped} malformed rows skipped (data.on_error=skip; first: {result.first_skipped})"
           if result.skipped else "")
        + (f"; {result.flattened} prompts flattened (out.flatten=true)" if result.flattened else "")
        + (f"; extra fields kept: {', '.join(result.extra_fields)}" if result.extra_fields else ""))


if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.convert")
