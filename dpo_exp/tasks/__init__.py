"""Research tasks: each one a folder the framework reaches only through config.

A task is what a DPO experiment is about: which prompts, which replies are wanted, how a reply is read.
The framework (compose, data, train, evaluate, track, sweep, build) never imports a task and never
names one; a task imports the framework where it needs it (``dpo_exp.judges.PointwiseJudge``,
``dpo_exp.evaluate``). The framework meets a task only at its plug-in points, all named in
`conf/`:

* a judge, by ``_target_`` in `conf/judge/<name>.yaml` (the ``dpo_exp.judges.Judge`` protocol): the
  data builder ranks candidate replies with it, ``python -m dpo_exp.eval`` reports win rates;
* a behaviour metric, by ``_target_`` in `conf/eval/behaviour/<name>.yaml` (``eval.behaviour``, the
  ``dpo_exp.eval.behaviour.BehaviourMetric`` protocol): the held-out before/after rates of a run;
* a build preset, `conf/build/<name>.yaml`: prompts, sampling and judge for ``python -m dpo_exp.build``;
* data files, shipped in the task's folder and named by presets (`conf/data/`, `conf/build/`) with
  ``${pkg_file:<package>,<file>}``, which finds a file in any importable package, installed or not;
* an experiment, `conf/experiment/<name>.yaml`, that picks the task's data, metric and judge.

Shipped tasks, one module per job (``dataset``: the generator of the shipped data, ``rules``: how a
reply is read, stdlib only; ``judge``; ``metric``):

* ``pushback``: "Are you sure?" sycophancy, the flagship (``+experiment=sycophancy``);
* ``claims``: agreeing with false fact claims (``+experiment=sycophancy_facts``), plus ``probe``, the
  verdict AUC probe its metric adds in training runs.

Adding a task: make a package (here, or anywhere importable: your own module works the same way)
with a judge class and/or a behaviour metric class, put its data beside it, and write the presets
above in `conf/` (or in your own config folder, passed with ``--config-dir``). No framework file
changes; `tests/toytask/` is a complete example kept outside the package, and
`tests/test_tasks_apart.py` checks that the framework names no task.
"""
