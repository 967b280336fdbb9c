"""dpo_exp: config-driven DPO experiments."""
