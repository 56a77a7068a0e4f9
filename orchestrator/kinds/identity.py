"""Identities: sha256 over (kind, the kind's result-changing payload, code version), sorted JSON.
Each kind module builds its own payload with these (docs/ARCHITECTURE.md "Identities")."""
from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "identity_of"]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def identity_of(kind: str, payload: dict[str, Any], code_version: str) -> str:
    """sha256 hex over (kind, result-changing payload, code version)."""
    blob = canonical_json({"kind": kind, "payload": payload, "code_version": code_version})
    return hashlib.sha256(blob.encode()).hexdigest()
