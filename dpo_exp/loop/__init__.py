"""The loop: iterative on-policy DPO with a quality gate, a model registry and lineage (`python -m dpo_exp.loop`).

- `__main__`: the command and its recipe, top to bottom (round r: collect -> build -> train -> gate -> promote).
- `schema`: its config (training's schema plus `build.*` and `loop.*`) and the checks before any work.
- `stages`: one function per stage, the state file that makes a killed loop resumable, and the shared evaluation.
- `gate`: the quality gate's verdict (target gain, guards, optional paired-bootstrap significance); pure.
- `registry`: versions, tags and the `champion` alias in MLflow's model registry; a version's lineage chain.
- `report`: the per-round table and plot, and the lineage text `python -m dpo_exp.report lineage` prints.

Importing this package stays cheap (no torch): the stages import the heavy libraries inside their functions.
"""
