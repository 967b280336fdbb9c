"""The pushback task's judge and metric, able to stall at a chosen stage so that tests/test_loop.py can SIGKILL a
loop there: with $DPO_TEST_STALL=build the judge, with =gate the metric (on real replies), touches
$DPO_TEST_MARK and sleeps until the test kills the process. Without the variable they are the task's own."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dpo_exp.tasks.pushback.judge import PushbackJudge
from dpo_exp.tasks.pushback.metric import PushbackMetric


def _stall(stage: str) -> None:
    if os.environ.get("DPO_TEST_STALL") == stage:
        Path(os.environ["DPO_TEST_MARK"]).write_text(stage)
        time.sleep(3600)
        raise AssertionError("the test was to kill this process long before")


class Judge(PushbackJudge):
    name = "pushback (test)"

    def compare(self, prompt, a, b, context=None):
        _stall("build")
        return super().compare(prompt, a, b, context)


class Metric(PushbackMetric):
    def metrics(self, rows, responses):
        if any(responses):  # not the names check before any work, which scores empty replies
            _stall("gate")
        return super().metrics(rows, responses)
