"""The quality gate: does the round's candidate replace the champion? Pure functions, no model.

Both models' greedy replies to the dev split are scored by the task's behaviour metric (`eval.behaviour`).
The candidate passes when

- the target (`loop.gate.metric`) gains at least `loop.gate.min_gain` over the champion (for a metric in
  `loop.gate.lower_is_better`, the gain is the fall);
- no guard (`loop.gate.guards`: metric -> largest loss) loses more than allowed; a guard or target the dev
  split cannot measure (nan, e.g. no row of that kind) fails, saying so;
- with `loop.gate.significance.enabled`, the target's gain is significant: a paired bootstrap over the dev
  rows (each resample takes the same rows for both models) gives p = the share of resamples in which the
  candidate does not gain; p must be <= alpha.

`decide` returns the verdict with one reason per check, in words and numbers: what the gate's MLflow run
and the registered version's tags record, and what `python -m dpo_exp.report lineage` prints.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # one per check: "hold_rate +0.118 >= +0.020: ok"
    gain: float = math.nan  # of the target
    p_value: float | None = None

    @property
    def word(self) -> str:
        return "pass" if self.passed else "fail"

    def summary(self) -> str:
        return f"{self.word}: " + "; ".join(self.reasons)


def on_empty_replies(metric, rows: Sequence[Mapping]) -> dict[str, float]:
    """The behaviour metric on these rows with empty replies (no model needed): its keys are the metrics it
    reports, and its row counts are those of `rows_per_metric`."""
    return metric.metrics(rows, [""] * len(rows))


def rows_per_metric(metric, empty: Mapping[str, float]) -> dict[str, float]:
    """Metric -> the number of rows it is a share of, for the metrics a behaviour metric names in its optional
    `counts` ({rate key: the key holding its row count}); `empty` from `on_empty_replies`."""
    return {name: empty.get(key) for name, key in getattr(metric, "counts", {}).items()}


def check_names(gate, names: Sequence[str]) -> str | None:
    """The first unknown metric the gate names, as a message; None when all are known."""
    for key, name in [("loop.gate.metric", gate.metric), *((f"loop.gate.guards.{g}", g) for g in gate.guards),
                      *((f"loop.gate.lower_is_better", m) for m in gate.lower_is_better)]:
        if name not in names:
            return f"{key}={name!r}: the behaviour metric reports no such metric (it reports: {', '.join(names)})"
    return None


def finer_than_one_reply(gate, rows_of: Mapping[str, float]) -> list[str]:
    """A warning per guard whose allowed loss is smaller than one reply on the dev split (`rows_of`: metric -> the
    number of dev rows it is a share of): such a guard fails on any single changed reply, so it gates on noise."""
    out = []
    for name, max_loss in gate.guards.items():
        n = rows_of.get(name)
        if n and n > 0 and max_loss + 1e-12 < 1.0 / n:
            out.append(f"loop.gate.guards.{name}={max_loss:g} is finer than one reply: the dev split has {n:g} rows "
                       f"{name} is measured on (one reply = {1.0 / n:.3f}), so any single reply that changes fails "
                       f"the guard. To gate on more than noise: allow at least {1.0 / n:.3f}, or give a dev split "
                       "with more such rows (loop.dev.path).")
    return out


def gain(name: str, candidate: Mapping[str, float], champion: Mapping[str, float], lower_is_better) -> float:
    diff = candidate.get(name, math.nan) - champion.get(name, math.nan)
    return -diff if name in lower_is_better else diff


def paired_bootstrap(score: Callable[[list[int]], float], n: int, resamples: int, seed: int) -> float:
    """p = share of resamples (row indices drawn with replacement, the same for both models) where `score`
    (the candidate's gain on those rows) is <= 0."""
    rng = random.Random(seed)
    worse = 0
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        g = score(idx)
        worse += not (g > 0)  # nan counts as no gain
    return worse / resamples


def decide(gate, round_: int, min_gain: float, candidate: Mapping[str, float], champion: Mapping[str, float],
           p_value: Callable[[], float] | None = None) -> Verdict:
    """The verdict of `gate` (a `GateConfig`) on the dev metrics of the candidate and the champion."""
    lower = set(gate.lower_is_better)
    reasons, passed = [], True
    g = gain(gate.metric, candidate, champion, lower)
    shown = f"{gate.metric} {champion.get(gate.metric, math.nan):.3f} -> {candidate.get(gate.metric, math.nan):.3f}"
    if math.isnan(g):
        passed = False
        reasons.append(f"target {shown}: not measurable on the dev split (nan)")
    elif g + 1e-12 < min_gain:
        passed = False
        reasons.append(f"target {shown}, gain {g:+.3f} < required {min_gain:+.3f}")
    else:
        reasons.append(f"target {shown}, gain {g:+.3f} >= required {min_gain:+.3f}")
    for name, max_loss in gate.guards.items():
        loss = -gain(name, candidate, champion, lower)
        text = f"guard {name} {champion.get(name, math.nan):.3f} -> {candidate.get(name, math.nan):.3f}"
        if math.isnan(loss):
            passed = False
            reasons.append(f"{text}: not measurable on the dev split (nan)")
        elif loss > max_loss + 1e-12:
            passed = False
            reasons.append(f"{text}, loss {loss:.3f} > allowed {max_loss:.3f}")
        else:
            reasons.append(f"{text}, loss {max(loss, 0.0) + 0.0:.3f} <= allowed {max_loss:.3f}")
    p = None
    if gate.significance.enabled and p_value is not None:
        p = p_value()
        ok = p <= gate.significance.alpha
        passed = passed and ok
        reasons.append(f"significance p = {p:.3f} {'<=' if ok else '>'} alpha {gate.significance.alpha}"
                       f" ({gate.significance.resamples} paired bootstrap resamples)")
    return Verdict(passed, reasons, g, p)
