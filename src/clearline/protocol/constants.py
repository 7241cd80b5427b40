"""Numbers fixed by the wire specification (docs/protocol.md)."""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
LENGTH_PREFIX_SIZE: Final = 4
MAX_FRAME_SIZE: Final = 65_536
"""Largest COSE_Sign1 a frame may carry, in bytes. A longer length prefix closes the session."""

COSE_SIGN1_TAG: Final = 18
COSE_HEADER_ALG: Final = 1
COSE_HEADER_KID: Final = 4
COSE_ALG_EDDSA: Final = -8
KID_SIZE: Final = 16
SIGNATURE_SIZE: Final = 64
NONCE_SIZE: Final = 16
SESSION_ID_SIZE: Final = 16
HASH_SIZE: Final = 32

SESSION_ID_CONTEXT: Final = b"clearline/1 session id"

MAX_ID_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 512
MAX_ASSETS_PER_TELEMETRY: Final = 1024
MAX_ASSETS_PER_BULK: Final = 2048
"""Records one Bulk message may carry (2,048 of the shortest fit one frame)."""
MAX_TRACKS_PER_QUERY: Final = 256
"""Tracks one Query may name (a swarm is asked about in groups of this many or fewer)."""
MAX_PROOF_NODES: Final = 64
MAX_CBOR_DEPTH: Final = 16

REPLAY_WINDOW: Final = 64
"""How many sequence numbers below the highest accepted one are remembered exactly."""
MAX_APPROVALS: Final = 10
"""Officers' approvals one Decision may carry."""
MAX_APPROVAL_SIZE: Final = 1024
"""Bytes of one approval's COSE_Sign1 (a full one is about 300)."""
MAX_COSIGNATURES: Final = 16
"""Witness cosignature lines one Checkpoint may carry (what a signed note must accept)."""
MAX_COSIGNATURE_SIZE: Final = 512
"""Bytes of one cosignature line (an Ed25519 one under a 255-byte name is about 370)."""
