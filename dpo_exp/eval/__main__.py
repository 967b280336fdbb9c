"""`python -m dpo_exp.eval`: see `dpo_exp.eval.compare`."""

import sys

from dpo_exp.eval.compare import cli_args, main

sys.argv = cli_args(sys.argv)
main()
