"""Datasets shipped with dpo_exp (see `dpo_exp.datasets.sycophancy`)."""
