"""A judge that never answers: it keeps a build or an eval RUNNING until the test kills it (tests/test_lifecycle.py)."""

from __future__ import annotations

import time


class Stall:
    name = "stall"

    def compare(self, prompt, a: str, b: str, context=None):
        time.sleep(3600)
        raise AssertionError("the test was to kill this process long before")
