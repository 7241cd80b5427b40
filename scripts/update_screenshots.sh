#!/usr/bin/env bash
# Re-take the console and TAK map screenshots in docs/ from the browser tests (what the pages
# show today).
source "$(dirname "$0")/_venv.sh"
source "$(dirname "$0")/_debian.sh"
python -m pytest -q tests/browser
mkdir -p docs/screenshots
cp artifacts/screenshots/console-*.png docs/screenshots/
# The TAK map's comes from `demo --tak` (skipped where FreeTAKServer cannot run).
if [ -f artifacts/screenshots/tak-map.png ]; then
    cp artifacts/screenshots/tak-map.png docs/screenshots/
fi
echo "updated docs/screenshots/"
