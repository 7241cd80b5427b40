"""Named streams: each is `random.Random(derive_seed(...))`, however it is first used."""

from __future__ import annotations

import copy
import pickle
import random

from clearline.sim.rng import Streams, derive_seed


def reference(name: str) -> random.Random:
    return random.Random(derive_seed(3, 7, name))


def test_a_stream_draws_what_its_seed_gives_whatever_is_used_first() -> None:
    streams = Streams(3, 7)
    expected = reference("a")
    assert [streams("a").random() for _ in range(3)] == [expected.random() for _ in range(3)]
    assert streams("b").gauss(0, 1) == reference("b").gauss(0, 1)
    assert streams("c").randbytes(16) == reference("c").randbytes(16)
    assert streams("d").getstate() == reference("d").getstate()
    assert pickle.loads(pickle.dumps(streams("e"))).random() == reference("e").random()
    assert copy.deepcopy(streams("f")).random() == reference("f").random()


def test_a_stream_is_one_object_and_a_random() -> None:
    streams = Streams(3, 7)
    stream = streams("a")
    assert isinstance(stream, random.Random) and streams("a") is stream
    expected = reference("a")
    assert stream.random() == expected.random()
    assert type(stream) is random.Random and streams("a") is stream
    assert streams("a").random() == expected.random()
