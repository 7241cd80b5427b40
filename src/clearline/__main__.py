"""`python -m clearline`: the command line."""

from clearline.cli import main

# Messages name the command as the docs and the installed script do, not `python -m ...`.
main(prog_name="clearline")
