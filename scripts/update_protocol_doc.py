"""Regenerate docs/protocol.md from its hand-written parts and the code's table and vectors."""

from __future__ import annotations

from pathlib import Path

from clearline.protocol.session import state_diagram
from clearline.protocol.vectors import render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def render() -> str:
    head = (DOCS / "spec" / "protocol.head.md").read_text()
    tail = (DOCS / "spec" / "protocol.tail.md").read_text()
    return head + "```mermaid\n" + state_diagram() + "\n```\n" + tail + render_markdown()


if __name__ == "__main__":
    (DOCS / "protocol.md").write_text(render())
    print("wrote docs/protocol.md")
