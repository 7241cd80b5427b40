"""A log in memory for witness tests: grown, forked, its checkpoints signed by its owner."""

from __future__ import annotations

import itertools

from clearline.log import merkle
from clearline.log.note import Note, log_origin, signed_checkpoint
from clearline.protocol.signing import Ed25519Signer

LOG = Ed25519Signer.from_label("US")
ORIGIN = log_origin("US", LOG.kid)
_entries = itertools.count()


class Log:
    """Leaves of distinct entries; `fork(k)` keeps the first k and replaces the rest."""

    def __init__(self, size: int = 0, signer: Ed25519Signer = LOG, side: str = "US") -> None:
        self.signer = signer
        self.side = side
        self.leaves: list[bytes] = []
        self.grow(size)

    def grow(self, count: int) -> None:
        self.leaves += [merkle.leaf_hash(b"entry %d" % next(_entries)) for _ in range(count)]

    @property
    def size(self) -> int:
        return len(self.leaves)

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_hash(self.leaves[: self.size if size is None else size])

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(self.leaves[: self.size if new is None else new], old)

    def note(self, size: int | None = None) -> Note:
        size = self.size if size is None else size
        return signed_checkpoint(self.side, self.signer, size, self.root(size))

    def fork(self, keep: int) -> Log:
        """The same log's key over another history: the first `keep` entries, then others
        up to the same size."""
        other = Log(0, self.signer, self.side)
        other.leaves = self.leaves[:keep]
        other.grow(self.size - keep)
        return other
