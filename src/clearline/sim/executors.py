"""Where Monte Carlo batches run: any `concurrent.futures.Executor`.

- `process` (default): a local process pool, one worker per core.
- `serial`: in this process, one batch at a time (tests, profiling, tiny runs).
- `dask://HOST:PORT`: an existing Dask distributed scheduler, through
  `Client.get_executor()`, for sweeps bigger than one machine.
- `dask-local`: a Dask LocalCluster started for this run (to try Dask without a
  cluster; the CI test uses it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

EXECUTORS_HELP = "process (default), serial, dask-local, or dask://HOST:PORT"


class SerialExecutor(Executor):
    """Runs each task when it is submitted, in the calling process."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextmanager
def make_executor(spec: str, workers: int) -> Iterator[tuple[Executor, int]]:
    """Yield (executor, number of workers) for `spec`; shut it down afterwards."""
    if spec == "serial":
        yield SerialExecutor(), 1
        return
    if spec == "process":
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield pool, workers
        return
    if spec == "dask-local" or spec.startswith("dask://") or spec.startswith("tcp://"):
        # Imported only when asked for: it is slow to import, and untyped.
        distributed: Any = importlib.import_module("distributed")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster  # noqa: N806
        cluster: Any = None
        client: Any
        if spec == "dask-local":
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            address = "tcp://" + spec.split("://", 1)[1]
            try:
                client = Client(address, timeout="10s")
            except OSError as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            n = sum(client.nthreads().values()) or workers
            yield client.get_executor(), n
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    raise ValueError(f"unknown executor {spec!r}; expected {EXECUTORS_HELP}")
