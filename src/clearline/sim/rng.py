"""Independent random streams, all derived from one run seed.

Each component of an episode draws from its own stream, named by what it models
(`US.sensor`, `network.US->PRC`, ...), keyed by (run seed, episode index, name).
Two consequences: a run is reproducible from its seed alone, and the arms of a
Monte Carlo see the same world for the same episode (common random numbers),
because one arm drawing more from, say, the network does not shift what the
sensors or the humans draw.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any


def derive_seed(seed: int, episode: int, name: str) -> int:
    material = f"clearline/{seed}/{episode}/{name}".encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=16).digest(), "big")


class _Unseeded(random.Random):
    """A stream that seeds itself the first time anything on it is used, and from then on is
    a plain `random.Random`: seeding the Mersenne Twister costs some 7 us, and an episode
    names streams it never draws from (the other side's reactions when a hotline answers
    first, partitions on a network without them)."""

    __slots__ = ()

    def __init__(self, seed: int) -> None:  # no seeding here, on purpose
        object.__setattr__(self, "_seed_later", seed)

    def __getattribute__(self, name: str) -> Any:
        # Any use at all (a draw, getstate, pickling) seeds first; the object then becomes
        # the plain Random that random.Random(seed) would have built, so later draws cost
        # exactly what they would have.
        seed = object.__getattribute__(self, "__dict__").pop("_seed_later")
        object.__setattr__(self, "__class__", random.Random)
        random.Random.seed(self, seed)
        self.gauss_next = None
        return object.__getattribute__(self, name)


class Streams:
    """The named streams of one episode; each is created on first use, and seeded on first
    draw (identically to ``random.Random(derive_seed(seed, episode, name))``)."""

    __slots__ = ("_prefix", "_streams", "episode", "seed")

    def __init__(self, seed: int, episode: int) -> None:
        self.seed = seed
        self.episode = episode
        self._prefix = f"clearline/{seed}/{episode}/"
        self._streams: dict[str, random.Random] = {}

    def __call__(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:
            material = (self._prefix + name).encode()
            seed = int.from_bytes(hashlib.blake2b(material, digest_size=16).digest(), "big")
            stream = self._streams[name] = _Unseeded(seed)
        return stream
