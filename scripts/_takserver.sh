# Sourced by scripts/test: the TAK server some tests run (tests/tak/test_takserver.py),
# FreeTAKServer from PyPI in .cache/takserver-venv, pinned by
# src/clearline/lab/takserver-constraints.txt; installed once (about a minute), again only
# when the pins change. The tests install it themselves when it is missing.
if ! python -c 'import sys; from pathlib import Path; from clearline.lab.takserver import install
install(Path(".cache/takserver-venv"), lambda m: print(m, file=sys.stderr))'; then
  echo "warning: the TAK server could not be installed;" \
       "tests/tak/test_takserver.py will be skipped (it says why)" >&2
fi
