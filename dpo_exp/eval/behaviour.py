"""Behaviour metrics on generated replies: the plug-in point a task's behaviour metric fills.

A behaviour metric reads the greedy replies to held-out prompts (the before/after table of a training
run, every model of `python -m dpo_exp.eval`). Which one runs is config: `eval.behaviour` names a
class by `_target_` (`conf/eval/behaviour/*.yaml`, naming a class in a task folder under
`dpo_exp/tasks/`, or a user's own class in their own module), or is null for none. The class offers
the ``BehaviourMetric`` protocol below; ``from_config`` builds it.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from dpo_exp import plugins


@runtime_checkable
class BehaviourMetric(Protocol):
    """What `eval.behaviour`'s `_target_` must build.

    * ``name``: what the summaries call it ("held-out <name> (before -> after): ...").
    * ``label(row, response) -> str``: one reply's label (the table's `label_before`/`label_after`);
      ``row`` is its held-out row: ``prompt`` (a list of messages) and the row's other fields.
    * ``metrics(rows, responses) -> dict[str, float]``: rates over the replies, one per row; nan for an
      empty group, never a crash. Logged as `heldout/{before,after}/<key>` (eval: `greedy/<key>`, ...).
    * ``headline``: [(key, description)] of the metrics the run summary prints as before -> after.

    Optional: ``requires`` (row fields ``label`` and ``metrics`` read; checked on the held-out file before
    any model work), and ``extra_metrics(model, tokenizer, heldout, as_reference, rows, batch_size)`` for
    model-based extras in a training run: the trained model, a context under which it computes the
    reference (``evaluate.before_after`` documents it), the held-out rows and the before/after table
    rows (it may add columns); returns {"before/<key>": value, "after/<key>": value}. ``counts``: {rate key:
    the key of ``metrics`` that holds the number of rows it is a share of}; with it the loop warns before any
    work when a gate guard allows less than one reply of the dev split.
    """

    name: str
    headline: Sequence[tuple[str, str]]

    def label(self, row: Mapping[str, Any], response: str) -> str: ...

    def metrics(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> dict[str, float]: ...


def from_config(cfg: Any) -> BehaviourMetric | None:
    """The metric `eval.behaviour` names, or None for null; every problem is a UserError naming the key."""
    metric = plugins.instantiate(cfg, "eval.behaviour")
    if metric is not None:
        plugins.require_members(metric, "eval.behaviour", ("name", "headline", "label", "metrics"),
                                "dpo_exp.eval.behaviour.BehaviourMetric")
    return metric
