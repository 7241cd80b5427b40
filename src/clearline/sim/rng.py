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


def derive_seed(seed: int, episode: int, name: str) -> int:
    material = f"clearline/{seed}/{episode}/{name}".encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=16).digest(), "big")


class Streams:
    """The named streams of one episode; each is created on first use."""

    __slots__ = ("_streams", "episode", "seed")

    def __init__(self, seed: int, episode: int) -> None:
        self.seed = seed
        self.episode = episode
        self._streams: dict[str, random.Random] = {}

    def __call__(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:
            stream = random.Random(derive_seed(self.seed, self.episode, name))
            self._streams[name] = stream
        return stream
