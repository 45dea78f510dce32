"""Measurements appended to a raw log as they are taken, found again by key: a stage killed
midway reuses what it had measured under the same stamp (the digest of what the measurements
depend on: parameters, environment, seed) and measures the rest."""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any


def digest(obj: Any) -> str:
    """A short stable hash (12 hex digits) of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


class KeyedLog:
    """The records of a raw log written under one stamp (``digest(stamp)``, kept in each
    record's ``field``), by key; ``put`` appends one as it is taken."""

    def __init__(self, log, stamp: Any, field: str):
        self.log, self.field, self.stamp = log, field, digest(stamp)
        self.done: dict[str, dict[str, Any]] = {}
        for rec in log.records():
            if rec.get(field) == self.stamp and "key" in rec:
                self.done[rec["key"]] = rec

    def key(self, **parts) -> str:
        return json.dumps(parts, sort_keys=True, default=str)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.done.get(key)

    def put(self, key: str, kind: str, **payload) -> dict[str, Any]:
        rec = {"type": kind, "key": key, self.field: self.stamp, "t_wall": time.time(), **payload}
        self.log.append(rec)
        self.done[key] = rec
        return rec
