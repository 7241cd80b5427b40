"""Group commit for the node's log: one SQLite thread, batches, futures resolved on commit.

Everything appended while a commit is running goes into the next one, so under
load one fsync covers many entries, and at rest an entry waits for exactly one.
A caller that must not report something as logged before it is durable awaits
the future `append` returns; a caller on the latency path (acting on a verified
answer) does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from clearline.errors import LogStoreError, MessageError
from clearline.log.store import LogStore
from clearline.protocol import codec
from clearline.protocol.messages import Body, Message, Micros
from clearline.protocol.signing import Signer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Local:
    body: Body
    now: Micros


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    now: Micros
    policy_hash: bytes
    roster_hash: bytes


_Item = bytes | _Local | _Checkpoint


class LogWriter:
    def __init__(
        self,
        path: Path,
        owner: Signer,
        side: str,
        max_pending: int,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self._path = path
        self._owner = owner
        self._side = side
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"log-{side}")
        self._store: LogStore | None = None
        self._pending: list[tuple[_Item, asyncio.Future[int]]] = []
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._on_commit = on_commit
        self.size = 0
        self.root = b""

    async def call(self, fn: Callable[[LogStore], T]) -> T:
        """Run `fn(store)` on the log's own thread (reads: proofs, sizes)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._with_store, fn)

    def _with_store(self, fn: Callable[[LogStore], T]) -> T:
        assert self._store is not None
        return fn(self._store)

    async def open(self, peer_side: str, peer_public_key: bytes) -> None:
        loop = asyncio.get_running_loop()

        def opening() -> None:
            self._store = LogStore(self._path, self._owner, self._side)
            self._store.add_key(peer_side, peer_public_key)
            self.size, self.root = self._store.size, self._store.root()

        await loop.run_in_executor(self._thread, opening)
        self._task = asyncio.create_task(self._run(), name=f"log-writer-{self._side}")

    def append(self, cose: bytes) -> asyncio.Future[int]:
        return self._enqueue(cose)

    def record(self, body: Body, now: Micros) -> asyncio.Future[int]:
        """A local record (gate decision, checkpoint), sealed by the owner at its index.

        Encoded once here, so a record that cannot be logged fails its caller at once
        (MessageError) and never reaches a batch whose other entries it would take down."""
        codec.encode_payload(Message(self._side, b"", 0, now, body))
        return self._enqueue(_Local(body, now))

    def checkpoint(
        self, now: Micros, policy_hash: bytes, roster_hash: bytes = bytes(32)
    ) -> asyncio.Future[int]:
        """A signed checkpoint over everything appended before it."""
        return self._enqueue(_Checkpoint(now, policy_hash, roster_hash))

    def _enqueue(self, item: _Item) -> asyncio.Future[int]:
        if self._closing:
            raise LogStoreError("the log is closing; nothing more is accepted")
        if len(self._pending) >= self._max_pending:
            raise LogStoreError(
                f"{len(self._pending)} entries wait for the disk; refusing more (back-pressure)"
            )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wake.set()
        return future

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            began = time.perf_counter()
            try:
                indices = await loop.run_in_executor(self._thread, self._commit, batch)
            except Exception as exc:  # the disk failed: everyone waiting must hear it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_commit is not None:
                self._on_commit(len(batch), time.perf_counter() - began)
            for (_, future), index in zip(batch, indices, strict=True):
                if future.done():
                    continue
                if isinstance(index, Exception):
                    future.set_exception(index)
                else:
                    future.set_result(index)
            if self._pending:
                self._wake.set()

    def _commit(self, batch: list[tuple[_Item, asyncio.Future[int]]]) -> list[int | Exception]:
        """Commit a batch; each item's index, or the error that kept that item (alone) out."""
        store = self._store
        assert store is not None
        results: list[int | Exception] = []
        entries: list[bytes] = []
        slots: list[int] = []  # where each entry's index goes in `results`

        def flush() -> None:
            for slot, index in zip(slots, store.append(entries) if entries else [], strict=True):
                results[slot] = index
            entries.clear()
            slots.clear()

        for item, _ in batch:
            if isinstance(item, _Checkpoint):
                flush()
                results.append(store.checkpoint(item.now, item.policy_hash, item.roster_hash))
                continue
            try:
                data = (
                    store.seal_local(item.body, item.now, store.size + len(entries))
                    if isinstance(item, _Local)
                    else item
                )
            except MessageError as exc:
                results.append(exc)
                continue
            slots.append(len(results))
            results.append(-1)
            entries.append(data)
        flush()
        self.size, self.root = store.size, store.root()
        return results

    async def close(self, checkpoint: tuple[Micros, bytes, bytes] | None = None) -> None:
        """Flush everything pending, seal it with a checkpoint (now, policy, roster), close."""
        if checkpoint is not None and self._task is not None and not self._closing:
            await self.checkpoint(*checkpoint)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        loop = asyncio.get_running_loop()
        if self._store is not None:
            await loop.run_in_executor(self._thread, self._store.close)
        self._thread.shutdown(wait=True)
