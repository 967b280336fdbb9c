"""Preference data: one module per job.

- `formats`: read a file, folder or hub id in any of the five supported layouts into canonical rows
  (TRL's conversational preference format), with errors naming the file, line and fix.
- `splits`: from a `data` config to train/eval rows (`data.where` filter, `data.max_rows`, the split),
  and held-out prompt files.
- `dimensions`: multi-objective rows (a `dimensions` block of per-reply scores): `data.dimension_weights`
  decides chosen vs rejected by a weighted mix of them.
- `audit`: the checks of `python -m dpo_exp.audit` and of the pre-train audit (`data.audit`).
- `convert`: `python -m dpo_exp.convert`, a writer per layout (the readers are `formats`').

Importing this package stays cheap (no `datasets`, torch or TRL), so `--help` answers at once.
"""

from dpo_exp.data.splits import Splits, load_heldout, load_pairs, load_splits, size_warnings, to_dataset

__all__ = ["Splits", "load_heldout", "load_pairs", "load_splits", "size_warnings", "to_dataset"]
