"""Auditing logs: the evidence is left exactly as it was found."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearline.errors import LogStoreError
from clearline.log import evidence, store
from clearline.log.store import export_log, verify_log
from tests.log.exchange import exchange, snapshot

# -- evidence is left as it was found --------------------------------------------------------


def _audit_everything(folder: Path, out: Path) -> None:
    for name in ("us.db", "prc.db"):
        verify_log(folder / name)
        export_log(folder / name, out / name)


@pytest.mark.parametrize("state", ["closed", "open", "killed"])
def test_auditing_changes_nothing_beside_the_evidence(tmp_path: Path, state: str) -> None:
    """Names, bytes and mtimes of every file in the folder are the same after each audit."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    ex = exchange(folder, sessions=2)
    sizes = {"us.db": ex.us.store.size, "prc.db": ex.prc.store.size}
    if state == "killed":  # what kill -9 leaves: the database and its WAL, no -shm
        killed = tmp_path / "killed"
        killed.mkdir()
        for name in ("us.db", "prc.db"):
            for suffix in ("", "-wal"):
                shutil.copyfile(folder / f"{name}{suffix}", killed / f"{name}{suffix}")
        ex.close()
        folder = killed
    elif state == "closed":
        ex.close()
    if state != "closed":
        wal = folder / "us.db-wal"
        assert wal.stat().st_size > 0, "the commits under audit are in the WAL"
    before = snapshot(folder)
    for _ in range(2):
        _audit_everything(folder, tmp_path / "out")
        assert snapshot(folder) == before
    for name, size in sizes.items():
        assert verify_log(folder / name).entries == size, "the WAL's commits were read"
    assert snapshot(folder) == before
    if state == "open":
        ex.close()


def test_a_log_that_changes_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = exchange(tmp_path)
    ex.close()
    path = tmp_path / "us.db"
    rows = store._entries

    def rows_and_a_writer(db: sqlite3.Connection) -> Iterator[tuple[int, bytes, bytes]]:
        for row in rows(db):
            if row[0] == 3:
                os.utime(path, ns=(0, 0))  # someone else writes the file meanwhile
            yield row

    monkeypatch.setattr(store, "_entries", rows_and_a_writer)
    with pytest.raises(LogStoreError, match="changed while it was being read"):
        verify_log(path)


def test_a_log_that_keeps_changing_while_it_is_copied_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = exchange(tmp_path)
    path = tmp_path / "us.db"
    copies = []
    copyfile = shutil.copyfile

    def copy_and_write(source: Path, target: Path) -> object:
        copies.append(source)
        result = copyfile(source, target)
        os.utime(source, ns=(len(copies), len(copies)))  # a writer, between copy and check
        return result

    monkeypatch.setattr(evidence.shutil, "copyfile", copy_and_write)
    with pytest.raises(LogStoreError, match="changed each of 5 times it was copied"):
        verify_log(path)
    assert len(copies) == 5 * 2  # the database and its WAL, five times
    ex.close()
