"""dpo_exp: config-driven DPO experiments."""

import warnings

# PEFT 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` on every model it wraps: a
# FutureWarning on every run that no setting can avoid. dpo_exp's own code uses the new names.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
