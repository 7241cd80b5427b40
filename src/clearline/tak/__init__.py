"""Cursor-on-Target (CoT) and TAK: tracks from a TAK picture in, hotline state back out.

`cot` parses and writes CoT events (XML and TAK Protocol v1 protobuf) with no I/O;
`mapping` says which events are own assets, foreign tracks or ignored; `settings` is
the node's `[tak]` section; `clearline.node.cot` runs the listeners and the output in the
node's event loop. `mapview` is what a TAK map shows of a picture (no I/O), `client` a
TAK server's client, and `mapserver` clearline's own map view (`clearline tak map`).
docs/tak.md has the long form.
"""
