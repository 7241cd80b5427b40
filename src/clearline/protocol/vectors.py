"""The test vectors published in docs/protocol.md, built from fixed keys, nonces and times.

The test keys' seeds are public on purpose: SHA-256("clearline test key US") and
SHA-256("clearline test key PRC"). Never use them for anything but conformance.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearline.log.note import cosign, signed_checkpoint
from clearline.protocol import codec
from clearline.protocol.messages import (
    Answer,
    Answers,
    Approval,
    ApprovalScope,
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Bulk,
    Checkpoint,
    Claim,
    Heartbeat,
    Hello,
    Intent,
    Message,
    Mission,
    Position,
    Query,
    Ready,
    TrackReport,
    message_to_wire,
)
from clearline.protocol.session import derive_session_id
from clearline.protocol.signing import Ed25519Signer

T0 = 1_800_000_000_000_000  # 2027-01-15T08:00:00Z in microseconds
US_NONCE = bytes(range(16))
PRC_NONCE = bytes(range(16, 32))
POLICY_HASH = bytes.fromhex("11" * 32)
OFFICER_LABEL = "US officer 0"
"""An officer's test key: approvals are signed by officers, not by the node."""
WITNESS_LABEL = "witness"
WITNESS_NAME = "witness.example/w1"
"""A witness's test key and its name on cosignatures."""


@dataclass(frozen=True)
class Vector:
    name: str
    signer_label: str
    message: Message

    def frame(self) -> bytes:
        return codec.frame(codec.sign(self.message, Ed25519Signer.from_label(self.signer_label)))


def build() -> list[Vector]:
    us, prc = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    sid = derive_session_id(("US", us.kid, US_NONCE), ("PRC", prc.kid, PRC_NONCE))
    track = TrackReport(
        "T-0417",
        Position(24_130_000, 122_380_000, 1_400),
        T0,
        AssetKind.STRIKE_PACKAGE,
        count=24,
        heading_deg=95,
        speed_mps=60,
    )
    second = TrackReport("T-0418", Position(24_140_000, 122_390_000, 1_400), T0, AssetKind.UNKNOWN)
    # A checkpoint with its C2SP note signature and a witness's cosignature of that note.
    root = bytes.fromhex("33" * 32)
    note = signed_checkpoint("US", us, 7, root)
    witness = Ed25519Signer.from_label(WITNESS_LABEL)
    cosignature = cosign(note.text, WITNESS_NAME, witness, T0 // 1_000_000 + 3)
    witnessed = Checkpoint(
        7,
        root,
        POLICY_HASH,
        note_sig=note.signatures[0].signature,
        cosigs=(cosignature.line().encode(),),
    )
    return [
        Vector(
            "hello-us",
            "US",
            Message("US", b"", 0, T0, Hello(US_NONCE, "PRC", prc.kid, POLICY_HASH, 1_000_000)),
        ),
        Vector("ready-prc", "PRC", Message("PRC", sid, 1, T0 + 55_000, Ready(256))),
        Vector("heartbeat-prc", "PRC", Message("PRC", sid, 2, T0 + 1_000_000, Heartbeat())),
        Vector(
            "query-us", "US", Message("US", sid, 2, T0 + 1_500_000, Query(track, T0 + 3_500_000))
        ),
        Vector(
            "answer-prc",
            "PRC",
            Message(
                "PRC",
                sid,
                3,
                T0 + 1_555_000,
                Answer(
                    2,
                    Claim.OURS,
                    Mission.RECONNAISSANCE,
                    False,
                    Intent.WITHDRAWING,
                    Position(24_100_000, 122_400_000, 1_500),
                    "PRC-RS-7",
                ),
            ),
        ),
        Vector(
            "checkpoint-us",
            "US",
            Message(
                "US", sid, 3, T0 + 2_000_000, Checkpoint(5, bytes.fromhex("22" * 32), POLICY_HASH)
            ),
        ),
        Vector(
            "query-batch-us",
            "US",
            Message("US", sid, 4, T0 + 2_100_000, Query(track, T0 + 4_100_000, (second,))),
        ),
        Vector(
            "answers-prc",
            "PRC",
            Message(
                "PRC",
                sid,
                4,
                T0 + 2_155_000,
                Answers(
                    4,
                    (
                        Answer(4, Claim.OURS, Mission.RECONNAISSANCE, False, Intent.WITHDRAWING),
                        Answer(4, Claim.NOT_OURS),
                    ),
                ),
            ),
        ),
        Vector(
            "bulk-prc",
            "PRC",
            Message(
                "PRC",
                sid,
                5,
                T0 + 2_600_000,
                Bulk.of(
                    (
                        AssetRecord(
                            "PRC-RS-7",
                            AssetKind.RECON_SWARM,
                            Mission.RECONNAISSANCE,
                            False,
                            AutonomyMode.AUTONOMOUS,
                            T0 + 2_590_000,
                            Position(24_100_000, 122_400_000, 1_500),
                        ),
                        AssetRecord(
                            "PRC-UAS-12",
                            AssetKind.UNCREWED_AIRCRAFT,
                            Mission.PATROL,
                            True,
                            AutonomyMode.HUMAN_ON_LOOP,
                            T0 + 2_595_000,
                            area=Area(Position(-33_870_000, 151_210_000, -20), 2_500),
                        ),
                        # The far ends of the ranges and of the enumerations' lists.
                        AssetRecord(
                            "PRC-SAT-1",
                            AssetKind.UNKNOWN,
                            Mission.UNKNOWN,
                            False,
                            AutonomyMode.HUMAN_IN_LOOP,
                            T0 + 2_599_999,
                            area=Area(Position(-90_000_000, 180_000_000, 100_000_000), 40_000_000),
                        ),
                    )
                ),
            ),
        ),
        Vector(
            "approval-us-officer",
            OFFICER_LABEL,
            Message(
                "US",
                b"",
                0,
                T0 + 2_500_000,
                Approval(
                    ApprovalScope.ACTION,
                    "strike",
                    "air",
                    T0 + 2_500_000,
                    T0 + 602_500_000,
                    "US-A7",
                    "T-0417",
                    "us-duty-officer-1",
                ),
            ),
        ),
        Vector("checkpoint-witnessed-us", "US", Message("US", sid, 5, T0 + 3_000_000, witnessed)),
    ]


def session_id() -> bytes:
    us, prc = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    return derive_session_id(("US", us.kid, US_NONCE), ("PRC", prc.kid, PRC_NONCE))


def render_markdown() -> str:
    """The vectors section of docs/protocol.md, exactly."""
    us, prc = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    lines = [
        "| key | seed (hex) | public key (hex) | kid (hex) |",
        "| --- | --- | --- | --- |",
    ]
    officer = Ed25519Signer.from_label(OFFICER_LABEL)
    witness = Ed25519Signer.from_label(WITNESS_LABEL)
    keys = (("US", us), ("PRC", prc), (OFFICER_LABEL, officer), (WITNESS_LABEL, witness))
    for label, key in keys:
        lines.append(
            f"| {label} | `{key.seed.hex()}` | `{key.public_key.hex()}` | `{key.kid.hex()}` |"
        )
    lines += ["", f"Session id from the two Hellos: `{session_id().hex()}`", ""]
    for v in build():
        payload = message_to_wire(v.message)
        lines += [
            f"#### {v.name}",
            "",
            f"Signed by the {v.signer_label} test key. Payload in CBOR diagnostic notation:",
            "",
            "```",
            diagnostic(payload),
            "```",
            "",
            "Frame (length prefix, then COSE_Sign1), hex:",
            "",
            "```",
            _wrap(v.frame().hex()),
            "```",
            "",
        ]
    return "\n".join(lines)


def diagnostic(obj: object) -> str:
    """CBOR diagnostic notation (RFC 8949 §8), map keys in deterministic order."""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, bytes):
        return f"h'{obj.hex()}'"
    if isinstance(obj, str):
        return '"' + obj.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(obj, list | tuple):
        return "[" + ", ".join(diagnostic(v) for v in obj) + "]"
    if isinstance(obj, dict):
        keys = sorted(obj, key=lambda k: codec.canonical_cbor(k))
        return "{" + ", ".join(f"{diagnostic(k)}: {diagnostic(obj[k])}" for k in keys) + "}"
    raise TypeError(f"no diagnostic notation for {type(obj).__name__}")


def _wrap(text: str, width: int = 96) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))
