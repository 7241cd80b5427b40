"""RFC 9162 conformance: every transparency-dev vector in ../shared/testdata/rfc9162."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from clearline.errors import ProofError
from clearline.log import merkle
from tests.conftest import SHARED_TESTDATA

RFC9162 = SHARED_TESTDATA / "rfc9162"


MISSING = pytest.param(
    None, marks=pytest.mark.skip(reason=f"conformance data not found at {RFC9162}")
)


def _vectors(kind: str) -> list[Path]:
    return sorted((RFC9162 / kind).rglob("*.json")) if RFC9162.is_dir() else []


def _params(paths: list[Path]) -> list[object]:
    """The vectors; a skip if the data is not there; a failure if it is there but none match."""
    if not RFC9162.is_dir():
        return [MISSING]
    return list(paths) or [pytest.param(None, id="none-found")]


def _load(path: Path | None) -> dict[str, Any]:
    assert path is not None, f"no vectors of this kind found under {RFC9162}"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def _id(path: Path | None) -> str:
    return str(path.relative_to(RFC9162)) if path is not None else "none"


@pytest.mark.parametrize("path", _params(_vectors("inclusion")), ids=_id)
def test_inclusion_vector(path: Path | None) -> None:
    v = _load(path)
    call = lambda: merkle.verify_inclusion(  # noqa: E731
        _b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v["proof"]), _b64(v["root"])
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


@pytest.mark.parametrize("path", _params(_vectors("consistency")), ids=_id)
def test_consistency_vector(path: Path | None) -> None:
    v = _load(path)
    call = lambda: merkle.verify_consistency(  # noqa: E731
        v["size1"], v["size2"], _proof(v["proof"]), _b64(v["root1"]), _b64(v["root2"])
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


def _happy_paths(kind: str) -> list[Path]:
    """The valid vectors over the first few RFC 6962 test leaves (folders 0 to 4)."""
    return [p for p in _vectors(kind) if p.parent.name in "01234" and p.name == "happy-path.json"]


RFC6962_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


@pytest.mark.parametrize("path", _params(_happy_paths("inclusion")), ids=_id)
def test_our_inclusion_proofs_equal_the_vectors(path: Path | None) -> None:
    v = _load(path)
    leaves = [merkle.leaf_hash(d) for d in RFC6962_LEAVES[: v["treeSize"]]]
    assert merkle.root_hash(leaves) == _b64(v["root"])
    assert merkle.inclusion_proof(leaves, v["leafIdx"]) == _proof(v["proof"])


@pytest.mark.parametrize("path", _params(_happy_paths("consistency")), ids=_id)
def test_our_consistency_proofs_equal_the_vectors(path: Path | None) -> None:
    v = _load(path)
    leaves = [merkle.leaf_hash(d) for d in RFC6962_LEAVES[: v["size2"]]]
    assert merkle.root_hash(leaves[: v["size1"]]) == _b64(v["root1"])
    assert merkle.consistency_proof(leaves, v["size1"]) == _proof(v["proof"])
