"""`python -m dpo_exp.eval`: see `dpo_exp.eval.compare`."""

import sys

from dpo_exp.cli import run_command
from dpo_exp.eval.compare import cli_args, main

run_command(main, sys.argv, name="dpo_exp.eval", prepare=cli_args)  # after hydra_argv: its errors are one line
