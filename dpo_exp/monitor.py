"""Watch a DPO run for its known failure modes and say so while it trains.

`DPOMonitor` is a transformers `TrainerCallback`. It reads the metrics TRL logs (train:
`rewards/margins`, `rewards/chosen`, `rewards/rejected`; eval: `eval_rewards/margins`,
`eval_kl/sampled_full_vocab`, the KL estimate dpo_exp adds) and, the first time a condition
holds, prints one line starting with `[dpo_exp] warning:` and sets an MLflow tag on the active
run, so the problem is visible both in the console and in the MLflow UI (and searchable:
`tags."dpo_exp.warning.kl_spike" != ""`). It never stops training: these are signs to look at,
not proofs of failure.

The three conditions (each fires at most once per training process):

* `margin_plateau`: the reward margin (chosen minus rejected implicit reward) has not beaten
  its best value for `patience` consecutive evaluations. Eval margins are used; train margins
  (one point per log) only when the run has no evaluation. More steps then mostly move the
  policy away from the reference without separating the pairs any better.
* `kl_spike`: `eval_kl/sampled_full_vocab` (nats per sequence) is above `kl_bound`: the policy
  drifted far from the reference, the regime where generations degrade and rewards get hacked.
* `chosen_falling`: in the train logs, `rewards/chosen` is below 0 and fell at each of the last
  `patience` logs, while `rewards/rejected` fell too over the same logs. The model is lowering
  the likelihood of the preferred replies as well as the rejected ones ("likelihood
  displacement"): the margin can still grow while the chosen answers become less likely.

`warnings` maps each condition that fired to its message (what the MLflow tag holds), for
tests and for code that wants to act on them.
"""

from __future__ import annotations

import math
import sys
from collections import deque

from transformers import TrainerCallback

TAG_PREFIX = "dpo_exp.warning."

TRAIN_MARGIN, EVAL_MARGIN = "rewards/margins", "eval_rewards/margins"
CHOSEN, REJECTED = "rewards/chosen", "rewards/rejected"
EVAL_KL = "eval_kl/sampled_full_vocab"


def _number(logs: dict, key: str) -> float | None:
    """The finite value of `key` in a log dict, else None (NaN/inf are StopOnNonFinite's business)."""
    value = logs.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _evaluates(args) -> bool:
    """Whether the run has evaluations (then eval margins, not train margins, drive the plateau check)."""
    strategy = getattr(args, "eval_strategy", "no")
    return str(getattr(strategy, "value", strategy)) != "no"


class DPOMonitor(TrainerCallback):
    """Console warning + MLflow tag, once each, for margin plateau, KL spike and falling chosen rewards.

    kl_bound: KL(policy || reference) in nats per sequence above which `kl_spike` fires.
    patience: evaluations without a new best margin before `margin_plateau` fires, and
              consecutive falling train logs before `chosen_falling` fires.
    """

    def __init__(self, kl_bound: float = 5.0, patience: int = 3):
        if not kl_bound > 0:
            raise ValueError(f"DPOMonitor needs kl_bound > 0, got {kl_bound}")
        if patience < 1:
            raise ValueError(f"DPOMonitor needs patience >= 1, got {patience}")
        self.kl_bound, self.patience = kl_bound, patience
        self.warnings: dict[str, str] = {}
        self._reset()

    def _reset(self) -> None:
        self._best: float | None = None  # best margin so far, and the step it was reached at
        self._best_step = 0
        self._stale = 0  # margin points since the best one
        self._eval_seen = False
        self._recent: deque[tuple[float, float]] = deque(maxlen=self.patience + 1)  # (chosen, rejected)

    # --- transformers hooks --------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed run starts with the earlier logs in state.log_history: replay them so the
        # checks continue where they were (a condition that already held is reported again).
        self._reset()
        for entry in state.log_history:
            self._check(args, entry, int(entry.get("step", state.global_step)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._check(args, logs or {}, state.global_step)

    # --- the checks ----------------------------------------------------------------------------

    def _check(self, args, logs: dict, step: int) -> None:
        eval_margin = _number(logs, EVAL_MARGIN)
        if eval_margin is not None:
            self._eval_seen = True
            self._margin_point(eval_margin, step, "eval", "evaluations")
        elif not self._eval_seen and not _evaluates(args):
            train_margin = _number(logs, TRAIN_MARGIN)
            if train_margin is not None:
                self._margin_point(train_margin, step, "train", "train logs")

        kl = _number(logs, EVAL_KL)
        if kl is not None and kl > self.kl_bound:
            self._warn(
                "kl_spike", f"KL(policy||ref) {kl:.3g} > bound {self.kl_bound:g} at step {step}",
                "the policy has drifted far from the reference, where generations degrade and rewards get "
                "hacked. Consider a larger beta, a lower train.learning_rate, or an earlier checkpoint.")

        chosen, rejected = _number(logs, CHOSEN), _number(logs, REJECTED)
        if chosen is not None and rejected is not None:
            self._recent.append((chosen, rejected))
            window = list(self._recent)
            if (len(window) == self.patience + 1 and chosen < 0
                    and all(later[0] < earlier[0] for earlier, later in zip(window, window[1:]))
                    and window[-1][1] < window[0][1]):
                self._warn(
                    "chosen_falling",
                    f"rewards/chosen fell {self.patience} logs in a row to {chosen:.3g} at step {step}, "
                    f"rewards/rejected fell too ({window[0][1]:.3g} -> {rejected:.3g})",
                    "the model is lowering the likelihood of the preferred replies as well (likelihood "
                    "displacement): the margin can grow while chosen answers get less likely. Consider a larger "
                    "beta, a lower train.learning_rate, or an SFT term on chosen (loss.extra_types=[sft]) or "
                    "loss=apo_zero.")

    def _margin_point(self, margin: float, step: int, split: str, points: str) -> None:
        if self._best is None or margin > self._best:
            self._best, self._best_step, self._stale = margin, step, 0
            return
        self._stale += 1
        if self._stale >= self.patience:
            self._warn(
                "margin_plateau",
                f"{split} reward margin not above its best {self._best:.3g} (step {self._best_step}) for "
                f"{self._stale} {points}, now {margin:.3g} at step {step}",
                "more steps now mostly move the policy away from the reference without separating the pairs "
                f"better. Consider stopping (the checkpoint nearest step {self._best_step} is the best so far) or "
                "changing train.learning_rate or beta.")

    def _warn(self, name: str, what: str, advice: str) -> None:
        if name in self.warnings:
            return
        self.warnings[name] = what
        print(f"[dpo_exp] warning: {what}: {advice}", file=sys.stderr, flush=True)
        try:
            import mlflow
        except ImportError:  # tracking is optional for the callback itself
            return
        if mlflow.active_run() is not None:
            mlflow.set_tag(TAG_PREFIX + name, what)
