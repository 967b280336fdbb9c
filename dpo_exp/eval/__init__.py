"""Evaluation: the `python -m dpo_exp.eval` command and the metrics it (and training) reports.

- `compare`: the command: base vs trained adapters on held-out prompts and eval pairs.
- `behaviour`: behaviour metrics on generated replies: the plug-in protocol (`eval.behaviour`) a task's
  metric offers.
- `genmetrics`: diversity, length and implicit-reward accuracy.
"""
