"""`python -m clearline`: the command line."""

from clearline.cli import main

main()
