"""The hotline wire protocol: messages, codec (CBOR + COSE_Sign1), sans-I/O Session."""
