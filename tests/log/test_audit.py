"""Auditing logs: pinned keys, uncovered tails, the two sides' logs compared, evidence untouched."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearline.errors import InputFileError, LogIntegrityError, LogStoreError
from clearline.log import evidence, store
from clearline.log.crosscheck import cross_check
from clearline.log.evidence import load_trust
from clearline.log.store import LogStore, export_log, verify_log
from clearline.protocol.messages import Claim
from clearline.protocol.signing import Ed25519Signer
from tests.log.exchange import (
    FORGER_PRC,
    FORGER_US,
    claims,
    decline,
    entries,
    exchange,
    find,
    rewrite,
    snapshot,
    trust_entries,
)

# -- keys pinned from outside the file ---------------------------------------------------------


def test_a_log_re_signed_with_its_own_new_keys_fails_only_against_pinned_keys(
    tmp_path: Path,
) -> None:
    ex = exchange(tmp_path, sessions=2)
    keys = ex.trust(tmp_path / "keys.json")
    ex.close()
    path = tmp_path / "us.db"
    assert set(claims(path)) == {Claim.NOT_OURS}
    rewrite(
        path,
        FORGER_US,
        edit=decline,
        resign={ex.us.key.kid: FORGER_US, ex.prc.key.kid: FORGER_PRC},
        sides={"US": FORGER_US, "PRC": FORGER_PRC},
    )
    assert set(claims(path)) == {Claim.DECLINE}, "the forgery changed what PRC answered"
    alone = verify_log(path)  # consistent with the keys it carries: that is all it shows
    assert not alone.authenticated and alone.trust is None
    assert alone.owner_kid == FORGER_US.kid.hex()
    with pytest.raises(LogIntegrityError) as failed:
        verify_log(path, load_trust(keys))
    assert str(failed.value) == (
        f"the owner kid {FORGER_US.kid.hex()} (side US) is not in trust file {keys}"
    )
    honest = verify_log(tmp_path / "prc.db", load_trust(keys))
    assert honest.authenticated and honest.trust == str(keys)


def test_a_forger_who_keeps_the_owner_key_is_caught_on_the_peer_key(tmp_path: Path) -> None:
    ex = exchange(tmp_path)
    keys = ex.trust(tmp_path / "keys.json")
    ex.close()
    path = tmp_path / "us.db"
    # The owner rewrites its own log and forges the peer's answers under a key of its own.
    rewrite(
        path,
        ex.us.key,
        edit=decline,
        resign={ex.prc.key.kid: FORGER_PRC},
        sides={"US": ex.us.key, "PRC": FORGER_PRC},
    )
    assert verify_log(path).entries > 0
    with pytest.raises(
        LogIntegrityError, match=f"kid {FORGER_PRC.kid.hex()} \\(side PRC\\) is not"
    ):
        verify_log(path, load_trust(keys))


@pytest.mark.parametrize(
    ("pinned", "message"),
    [
        (("US",), "key table: kid {prc} (side PRC) is not in trust file {keys}"),
        (
            ("US", "CN"),
            "key table: kid {prc} is side 'PRC''s in the log, 'CN''s in trust file {keys}",
        ),
        (("PRC",), "the owner kid {us} (side US) is not in trust file {keys}"),
        (
            ("CN", "PRC"),
            "the owner kid {us} is side 'US''s in the log, 'CN''s in trust file {keys}",
        ),
    ],
    ids=["peer-unknown", "peer-other-side", "owner-unknown", "owner-other-side"],
)
def test_a_key_table_that_disagrees_with_the_pinned_keys_is_named(
    tmp_path: Path, pinned: tuple[str, ...], message: str
) -> None:
    ex = exchange(tmp_path)
    ex.close()
    us, prc = ex.us.key, ex.prc.key
    chosen = {
        ("US",): {us: "US"},
        ("US", "CN"): {us: "US", prc: "CN"},
        ("PRC",): {prc: "PRC"},
        ("CN", "PRC"): {us: "CN", prc: "PRC"},
    }[pinned]
    keys = ex.trust(tmp_path / "keys.json", *chosen, sides=tuple(chosen.values()))
    with pytest.raises(LogIntegrityError) as failed:
        verify_log(tmp_path / "us.db", load_trust(keys))
    assert str(failed.value) == message.format(us=us.kid.hex(), prc=prc.kid.hex(), keys=keys)


US = Ed25519Signer.from_label("US")
GOOD = trust_entries({US: "US"})
KID = US.kid.hex()


def _with(**change: object) -> str:
    entry = {**GOOD[KID], **change}
    return str({KID: {k: v for k, v in entry.items() if v is not None}}).replace("'", '"')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1', ":1: not JSON: Expecting"),
        ("[]", ": expected an object {kid_hex:"),
        ("{}", ": no keys; expected"),
        ('{"US": {}}', ": key 'US': expected a kid of 32 hex digits"),
        (f'{{"{KID}": "{US.public_key.hex()}"}}', f": key '{KID}': expected an object with"),
        (_with(side=None), f": key '{KID}': missing ['side']; expected exactly"),
        (_with(comment="x"), f": key '{KID}': unknown ['comment']; expected exactly"),
        (_with(side="us"), f": key '{KID}': side 'us' is not a side name"),
        (_with(alg="ES256"), f": key '{KID}': alg 'ES256', expected 'EdDSA'"),
        (_with(crv="X25519"), f": key '{KID}': crv 'X25519', expected 'Ed25519'"),
        (_with(public_key="00" * 31), f": key '{KID}': public_key must be 64 lowercase hex"),
        (_with(public_key="zz" * 32), f": key '{KID}': public_key must be 64 lowercase hex"),
        (
            _with(public_key=FORGER_US.public_key.hex()),
            f": key '{KID}': kid does not match public_key (its kid is {FORGER_US.kid.hex()})",
        ),
        (f'{{"{KID}": {{}}, "{KID}": {{}}}}', f": key '{KID}' appears twice"),
    ],
    ids=[
        "not-json",
        "list",
        "empty",
        "bad-kid",
        "not-object",
        "missing",
        "unknown",
        "side",
        "alg",
        "crv",
        "short-key",
        "not-hex",
        "kid-mismatch",
        "duplicate",
    ],
)
def test_a_malformed_trust_file_is_named_with_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(InputFileError) as failed:
        load_trust(path)
    assert str(failed.value).startswith(f"{path}{expected}"), str(failed.value)


def test_a_well_formed_trust_file_loads_and_a_missing_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(_with())
    trusted = load_trust(path)
    assert trusted.keys[US.kid].side == "US" and trusted.keys[US.kid].public_key == US.public_key
    with pytest.raises(InputFileError, match=r"nothing\.json: no such trust file"):
        load_trust(tmp_path / "nothing.json")


def test_the_keys_json_export_writes_is_a_trust_file(tmp_path: Path) -> None:
    ex = exchange(tmp_path)
    ex.close()
    export_log(tmp_path / "prc.db", tmp_path / "out")
    trusted = load_trust(tmp_path / "out" / "keys.json")
    assert set(trusted.keys) == {ex.us.key.kid, ex.prc.key.kid}
    assert verify_log(tmp_path / "us.db", trusted).authenticated


# -- checkpoint coverage ---------------------------------------------------------------------


def test_a_sealed_log_has_no_uncovered_entries(tmp_path: Path) -> None:
    ex = exchange(tmp_path, sessions=2)
    ex.close()
    for name in ("us.db", "prc.db"):
        report = verify_log(tmp_path / name)
        assert report.last_checkpoint_size == report.entries - 1  # the seal covers all before it
        assert (report.uncovered, report.first_uncovered) == (0, None)


def test_a_log_cut_short_reports_the_entries_no_checkpoint_covers(tmp_path: Path) -> None:
    ex = exchange(tmp_path, sessions=2)
    ex.close()
    path = tmp_path / "us.db"
    db = sqlite3.connect(path)
    (size,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
    db.execute("DELETE FROM entries WHERE idx >= ?", (size - 30,))
    db.commit()
    db.close()
    kept = entries(path)
    last_seal = max(e.index for e in kept if e.message.type.value == "checkpoint")
    report = verify_log(path)  # nothing in the file itself can show that it was cut
    assert report.entries == size - 30
    assert report.last_checkpoint_size == last_seal
    assert report.uncovered == size - 30 - last_seal - 1 > 0
    assert report.first_uncovered == last_seal + 1


def test_a_log_without_checkpoints_is_uncovered_throughout(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    ex = exchange(source)
    ex.close()
    first = [e.cose for e in entries(source / "us.db")][:5]  # before the first checkpoint
    store = LogStore(tmp_path / "us.db", ex.us.key, "US")
    store.add_key("PRC", ex.prc.key.public_key)
    store.append(first)
    store.close()
    report = verify_log(tmp_path / "us.db")
    assert (report.entries, report.checkpoints, report.last_checkpoint_size) == (5, 0, 0)
    assert (report.uncovered, report.first_uncovered) == (5, 0)


# -- the two sides' logs compared ------------------------------------------------------------


def _pair(tmp_path: Path, sessions: int = 2):  # type: ignore[no-untyped-def]
    ex = exchange(tmp_path, sessions=sessions)
    ex.close()
    return ex, tmp_path / "us.db", tmp_path / "prc.db"


def test_two_honest_logs_agree_and_undelivered_messages_are_counted(tmp_path: Path) -> None:
    ex, us, prc = _pair(tmp_path)
    report = cross_check(us, prc, load_trust(ex.trust(tmp_path / "keys.json")))
    assert report.ok and report.findings == [] and report.authenticated
    to_prc, to_us = report.directions
    assert (to_prc.sender, to_prc.receiver) == ("US", "PRC")
    assert (to_prc.sent, to_prc.delivered, to_prc.not_delivered) == (17, 14, 3)
    assert (to_us.sent, to_us.delivered, to_us.not_delivered) == (26, 26, 0)
    backwards = cross_check(prc, us)
    assert backwards.ok and [d.sender for d in backwards.directions] == ["PRC", "US"]


def test_a_message_removed_below_a_later_one_is_an_omission(tmp_path: Path) -> None:
    ex, us, prc = _pair(tmp_path)
    first = ex.sessions[0]
    removed = find(prc, "US", first, 3)
    rewrite(prc, ex.prc.key, keep=lambda e: e.cose != removed.cose)  # PRC re-seals its log
    assert verify_log(prc, load_trust(ex.trust(tmp_path / "keys.json"))).uncovered == 0
    report = cross_check(us, prc)
    assert not report.ok
    (finding,) = report.findings
    sent = find(us, "US", first, 3)
    highest = find(prc, "US", first, 7)
    assert (finding.kind, finding.sender, finding.session, finding.seq, finding.type) == (
        "omission",
        "US",
        first.hex(),
        3,
        "query",
    )
    assert (finding.a_index, finding.b_index) == (sent.index, None)
    assert f"us.db entry {sent.index}) is missing from {prc}" in finding.detail
    assert f"seq 7 of that session at entry {highest.index}: it was received" in finding.detail
    assert report.directions[0].omissions == 1 and report.directions[0].delivered == 13


def test_messages_after_the_receivers_last_of_their_session_are_not_omissions(
    tmp_path: Path,
) -> None:
    """PRC lost the last US message of session 1 (a crash before commit, say) but logged all
    of session 2: nothing says that message arrived, so it is not delivered, not omitted."""
    ex, us, prc = _pair(tmp_path)
    last = find(prc, "US", ex.sessions[0], 7)
    rewrite(prc, ex.prc.key, keep=lambda e: e.cose != last.cose)
    report = cross_check(us, prc)
    assert report.ok, report.findings
    assert report.directions[0].not_delivered == 3 + 1


def test_a_sent_message_removed_from_the_senders_log_is_an_insertion(tmp_path: Path) -> None:
    ex, us, prc = _pair(tmp_path)
    second = ex.sessions[1]
    removed = find(us, "US", second, 4)
    rewrite(us, ex.us.key, keep=lambda e: e.cose != removed.cose)
    assert verify_log(us).uncovered == 0  # US re-sealed: alone, its log looks whole
    report = cross_check(us, prc)
    (finding,) = report.findings
    held = find(prc, "US", second, 4)
    last = find(us, "US", second, 10)
    assert (finding.kind, finding.seq, finding.a_index, finding.b_index) == (
        "insertion",
        4,
        None,
        held.index,
    )
    assert f"{us} skips it: it holds seq 10 of that session at entry {last.index}" in finding.detail
    assert report.directions[0].insertions == 1


def test_a_senders_log_cut_short_shows_as_insertions_in_the_peers_log(tmp_path: Path) -> None:
    _, us, prc = _pair(tmp_path)
    db = sqlite3.connect(us)
    db.execute("DELETE FROM entries WHERE idx >= (SELECT COUNT(*) - 30 FROM entries)")
    db.commit()
    db.close()
    kept = entries(us)
    ends = max(e.message.seq for e in kept if e.message.side == "US" and e.message.session_id)
    report = cross_check(us, prc)
    details = [f.detail for f in report.findings]
    assert all(f.kind == "insertion" for f in report.findings)
    assert any(f"{us} ends that session at seq {ends} " in d for d in details)
    assert any(f"{us} holds no US message of that session" in d for d in details)
    assert report.directions[0].insertions == 7 - ends + 7  # the rest of session 1, session 2


def test_a_message_rewritten_by_its_signer_is_a_conflict(tmp_path: Path) -> None:
    """PRC changes its own answer and re-signs it with its real key: its log verifies
    alone, even against pinned keys; the US log still holds what PRC said."""
    ex, us, prc = _pair(tmp_path)
    first = ex.sessions[0]
    original = find(prc, "PRC", first, 2)
    rewrite(prc, ex.prc.key, edit=lambda e: decline(e) if e.cose == original.cose else None)
    keys = load_trust(ex.trust(tmp_path / "keys.json"))
    assert verify_log(prc, keys).uncovered == 0
    report = cross_check(us, prc, keys)
    (finding,) = report.findings
    assert (finding.kind, finding.sender, finding.seq, finding.type) == (
        "conflict",
        "PRC",
        2,
        "answer",
    )
    assert finding.a_index == find(us, "PRC", first, 2).index
    assert finding.b_index == original.index
    assert report.directions[1].conflicts == 1


def test_a_message_under_another_key_for_the_peers_side_is_an_insertion(tmp_path: Path) -> None:
    ex, us, prc = _pair(tmp_path)
    target = find(prc, "US", ex.sessions[0], 4)
    rewrite(prc, ex.prc.key, resign={target.index: FORGER_US})
    db = sqlite3.connect(prc)
    db.execute("INSERT INTO keys VALUES (?, 'US', ?)", (FORGER_US.kid, FORGER_US.public_key))
    db.commit()
    db.close()
    report = cross_check(us, prc)
    kinds = sorted((f.kind, f.seq) for f in report.findings)
    assert kinds == [("insertion", 4), ("omission", 4)]
    (inserted,) = [f for f in report.findings if f.kind == "insertion"]
    assert f"signed by key {FORGER_US.kid.hex()}, which is not {us}'s owner key" in inserted.detail
    with pytest.raises(LogIntegrityError, match=f"{prc}: key table: kid {FORGER_US.kid.hex()}"):
        cross_check(us, prc, load_trust(ex.trust(tmp_path / "keys.json")))


def test_cross_check_refuses_logs_that_are_not_two_ends_of_one_hotline(tmp_path: Path) -> None:
    _, us, _ = _pair(tmp_path, sessions=1)
    other = tmp_path / "other"
    other.mkdir()
    store = LogStore(other / "prc.db", FORGER_PRC, "PRC")
    store.add_key("US", FORGER_US.public_key)
    store.close()
    with pytest.raises(LogIntegrityError, match="are both side US's logs"):
        cross_check(us, us)
    with pytest.raises(LogIntegrityError, match=f"does not pin {us}'s owner key .* at all"):
        cross_check(us, other / "prc.db")


def test_cross_check_names_the_log_that_fails_on_its_own(tmp_path: Path) -> None:
    _, us, prc = _pair(tmp_path, sessions=1)
    db = sqlite3.connect(prc)
    db.execute("UPDATE entries SET root=? WHERE idx=3", (bytes(32),))
    db.commit()
    db.close()
    with pytest.raises(
        LogIntegrityError, match=f"^{prc}: entry 3: content does not match"
    ) as failed:
        cross_check(us, prc)
    assert failed.value.index == 3


# -- evidence is left as it was found --------------------------------------------------------


def _audit_everything(folder: Path, out: Path, keys: Path) -> None:
    trusted = load_trust(keys)
    for name in ("us.db", "prc.db"):
        verify_log(folder / name)
        verify_log(folder / name, trusted)
        export_log(folder / name, out / name)
    cross_check(folder / "us.db", folder / "prc.db", trusted)


@pytest.mark.parametrize("state", ["closed", "open", "killed"])
def test_auditing_changes_nothing_beside_the_evidence(tmp_path: Path, state: str) -> None:
    """Names, bytes and mtimes of every file in the folder are the same after each audit."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    ex = exchange(folder, sessions=2)
    keys = ex.trust(tmp_path / "keys.json")
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
        _audit_everything(folder, tmp_path / "out", keys)
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
