""""Are you sure?" sycophancy, the flagship task (`+experiment=sycophancy`): after baseless pushback the
assistant keeps its right answer; after a correction with a concrete reason it accepts it.

- `dataset`: the generator of the shipped conversations and templated pairs
  (``python -m dpo_exp.tasks.pushback.dataset``); `pushback_train.jsonl` is `build=sycophancy`'s output.
- `rules`: how a reply is read (holds / caves / accepts / rejects / correct / wrong / unclear), stdlib only.
- `judge`: `PushbackJudge` (`judge=pushback`).
- `metric`: `PushbackMetric` (`eval/behaviour=pushback`).
"""
