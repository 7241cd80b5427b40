"""Human authority against two real nodes: names are not officers, signatures are.

Each finding of the dishonest-caller review, tried as it was first tried: with curl's
request body against a running node, then with what an attacker holding a token could
send, then the honest path an officer takes by hand.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clearline.log.store import verify_log
from clearline.officer import enrol
from tests.node.harness import (
    NUCLEAR_BY_NAME,
    make_keys,
    running,
    start_node,
    write_config,
)


def clearline(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def approve(key: Path, pending: dict[str, object], action_id: str) -> str:
    signed = clearline(
        "officer",
        "approve",
        "--key",
        str(key),
        "--pending",
        "-",
        "--action",
        action_id,
        stdin=json.dumps(pending),
    )
    assert signed.returncode == 0, signed.stderr
    assert "Traceback" not in signed.stderr
    return signed.stdout.strip()


@pytest.mark.slow
def test_human_authority_takes_officers_signatures(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    roster = tmp_path / "us-roster.yaml"
    officers = tmp_path / "officers"
    for officer in ("us-duty-1", "us-duty-2"):
        enrol(roster, officers, officer, "US")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        us = start_node(
            write_config(
                tmp_path,
                "US",
                "PRC",
                address=f"127.0.0.1:{prc.listen}",
                extra=f'roster = "{roster.name}"',
            )
        )
        with running(us):
            us.wait_link("up")
            # The request of the finding, with no credential at all.
            bare = httpx.post(f"{us.api}/v1/actions", json=NUCLEAR_BY_NAME, timeout=10)
            assert bare.status_code == 401
            with us.client("operator") as api:
                # With a token: a list of names is not a field the gate knows.
                named = api.post("/v1/actions", json=NUCLEAR_BY_NAME)
                assert named.status_code == 422
                assert "authorizations" in named.text
                # Anything that is not an officer's signature counts for nothing.
                fake = base64.b64encode(b"nobody-1").decode()
                for body in (
                    {**NUCLEAR_BY_NAME, "authorizations": None},
                    {**NUCLEAR_BY_NAME, "authorizations": None, "approvals": [fake, fake]},
                    {
                        "action_id": "a3",
                        "actor": "human",
                        "rung": "strike",
                        "domain": "air",
                        "target": "T-1",
                        "approvals": [fake],
                    },
                    {**NUCLEAR_BY_NAME, "authorizations": None, "domain": "air"},
                ):
                    body = {k: v for k, v in body.items() if v is not None}
                    decision = api.post("/v1/actions", json=body).json()
                    assert decision["verdict"] == "deny", (body, decision)
                    assert decision["rule"] == "authorizations", decision
                autonomous = api.post(
                    "/v1/actions",
                    json={"action_id": "a4", "rung": "nuclear", "domain": "space"},
                ).json()
                assert (autonomous["verdict"], autonomous["rule"]) == ("deny", "excluded-domain")

                # The honest path: the gate refers a strike to a human, an officer signs it.
                referred = api.post(
                    "/v1/actions",
                    json={"action_id": "US-A7", "rung": "strike", "domain": "air", "target": "T-1"},
                ).json()
                assert referred["rule"] == "autonomy-cap"
                pending = api.get("/v1/approvals/pending").json()
                act = next(p for p in pending["pending"] if p["action_id"] == "US-A7")
                assert act["officers_needed"] == 1 and act["target"] == "T-1"
                signed = approve(officers / "us-duty-1.officer.key", pending, "US-A7")
                human = {
                    "action_id": "US-A7",
                    "actor": "human",
                    "rung": "strike",
                    "domain": "air",
                    "target": "T-1",
                    "approvals": [signed],
                }
                allowed = api.post("/v1/actions", json=human).json()
                assert (allowed["verdict"], allowed["rule"]) == ("allow", "human-authority")
                assert "us-duty-1" in allowed["reason"]
                replayed = api.post("/v1/actions", json=human).json()
                assert replayed["verdict"] == "deny" and "already used" in replayed["reason"]
                assert not any(
                    p["action_id"] == "US-A7"
                    for p in api.get("/v1/approvals/pending").json()["pending"]
                )

                # A nuclear act: one officer is not enough; two distinct officers are.
                refused = api.post(
                    "/v1/actions",
                    json={"action_id": "N-1", "rung": "nuclear", "domain": "nuclear-c2"},
                ).json()
                assert refused["rule"] == "excluded-domain"
                pending = api.get("/v1/approvals/pending").json()
                first = approve(officers / "us-duty-1.officer.key", pending, "N-1")
                nuclear = {
                    "action_id": "N-1",
                    "actor": "human",
                    "rung": "nuclear",
                    "domain": "nuclear-c2",
                    "approvals": [first],
                }
                one = api.post("/v1/actions", json=nuclear).json()
                assert one["verdict"] == "deny" and "2 approvals" in one["reason"], one
                second = approve(officers / "us-duty-2.officer.key", pending, "N-1")
                both = api.post("/v1/actions", json={**nuclear, "approvals": [first, second]})
                assert both.json()["verdict"] == "allow", both.json()

            with prc.client() as peer:
                link = peer.get("/v1/link").json()
            with us.client() as own:
                mine = own.get("/v1/link").json()
                policy = own.get("/v1/policy").json()
            assert link["peer_roster_hash"] == mine["roster_hash"]
            assert policy["roster"]["hash"] == mine["roster_hash"]
            assert {o["id"] for o in policy["roster"]["officers"]} == {"us-duty-1", "us-duty-2"}
            assert policy["excluded_rungs"] == ["nuclear"]
            assert us.stop() == 0
    report = verify_log(us.log)
    assert report.human_decisions == 2
    audit = clearline("log", "verify", str(us.log), "--roster", str(roster))
    assert audit.returncode == 0, audit.stderr
    assert "2 human decisions, each approval re-checked" in audit.stdout


@pytest.mark.slow
def test_a_changed_peer_roster_is_seen(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    roster = tmp_path / "us-roster.yaml"
    enrol(roster, tmp_path / "officers", "us-duty-1", "US")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    config = write_config(
        tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}", extra='roster = "us-roster.yaml"'
    )
    with running(prc):
        us = start_node(config)
        with running(us):
            us.wait_link("up")
            first = prc.wait_link("up")["peer_roster_hash"]
            assert us.stop() == 0
        enrol(roster, tmp_path / "officers", "us-duty-2", "US")
        us = start_node(config)
        with running(us):
            us.wait_link("up")
            prc.wait_link("up")
            changes = prc.events("peer-authority-changed")
            assert [c["what"] for c in changes] == ["roster"], changes
            assert changes[0]["before"] == first
            with prc.client() as peer:
                assert peer.get("/v1/link").json()["peer_roster_hash"] == changes[0]["after"]
                metrics = peer.get("/metrics").text
            assert 'clearline_peer_authority_changes_total{what="roster"} 1.0' in metrics


def test_a_changed_roster_is_seen_even_when_both_nodes_restart(tmp_path: Path) -> None:
    """The peer's previous hashes come from the node's own log, not from memory."""
    make_keys(tmp_path, "US", "PRC")
    roster = tmp_path / "us-roster.yaml"
    enrol(roster, tmp_path / "officers", "us-duty-1", "US")
    prc_config = write_config(tmp_path, "PRC", "US", listen=True)
    prc = start_node(prc_config)
    with running(prc):
        us_config = write_config(
            tmp_path,
            "US",
            "PRC",
            address=f"127.0.0.1:{prc.listen}",
            extra='roster = "us-roster.yaml"',
        )
        us = start_node(us_config)
        with running(us):
            us.wait_link("up")
            prc.wait_link("up")
            assert us.stop() == 0
        assert prc.stop() == 0
    enrol(roster, tmp_path / "officers", "us-duty-2", "US")
    prc = start_node(prc_config)
    with running(prc):
        us = start_node(
            write_config(
                tmp_path,
                "US",
                "PRC",
                address=f"127.0.0.1:{prc.listen}",
                extra='roster = "us-roster.yaml"',
            )
        )
        with running(us):
            us.wait_link("up")
            prc.wait_link("up")
            changes = prc.events("peer-authority-changed")
            assert [c["what"] for c in changes] == ["roster"], changes
