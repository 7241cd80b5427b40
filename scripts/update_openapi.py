"""Regenerate docs/openapi.json, the node's local API description."""

from __future__ import annotations

import json
from pathlib import Path

from clearline.node.api import build_app

OUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"

if __name__ == "__main__":
    OUT.write_text(json.dumps(build_app(None).openapi(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
