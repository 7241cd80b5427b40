#!/usr/bin/env bash
# Re-take the console screenshots in docs/ from the browser tests (what the page shows today).
source "$(dirname "$0")/_venv.sh"
source "$(dirname "$0")/_debian.sh"
python -m pytest -q tests/browser
mkdir -p docs/screenshots
cp artifacts/screenshots/console-*.png docs/screenshots/
echo "updated docs/screenshots/"
