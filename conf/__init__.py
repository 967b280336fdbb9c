# conf/ is also the package `dpo_exp.conf` (dpo_exp/conf links here; the wheel carries a copy), so an
# installed dpo_exp finds its configs through Hydra's pkg://dpo_exp.conf search path. Nothing to import.
