"""Cursor-on-Target (CoT) and TAK: tracks from a TAK picture in, hotline state back out.

`cot` parses and writes CoT events (XML and TAK Protocol v1 protobuf) with no I/O;
`mapping` says which events are own assets, foreign tracks or ignored; `settings` is
the node's `[tak]` section; `service` runs the listeners and the output inside the
node's event loop. docs/tak.md has the long form.
"""
