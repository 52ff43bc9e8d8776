"""Errors the store raises (part of the tree drawn in :mod:`orchestrator.errors`).

OrchestratorError
├── LeaseLost            (the caller no longer holds the execution's lease)
├── BatchNotFound        (no batch with that id)
├── PayloadRejected      (nothing was stored)
│   ├── PayloadTooLarge  (above payload_max_bytes: States.DataLimitExceeded)
│   └── PayloadInvalid   (not storable JSON: NaN, non-string keys, NUL, ...)
└── TaskTokenRefused     (SendTask*: the token cannot be used; ``reason`` says why)
    ├── InvalidToken     (not a token of ours, or already used)
    ├── TaskDoesNotExist (unknown, or its execution ended or moved on)
    └── TaskTimedOut     (its TimeoutSeconds or HeartbeatSeconds passed)

They are defined in :mod:`orchestrator.errors` (which imports nothing of the
store, so the two never import each other) and re-exported here.
"""

from __future__ import annotations

from orchestrator.errors import (
    BatchNotFound,
    InvalidToken,
    LeaseLost,
    PayloadInvalid,
    PayloadRejected,
    PayloadTooLarge,
    TaskDoesNotExist,
    TaskTimedOut,
    TaskTokenRefused,
)

__all__ = [
    "BatchNotFound",
    "InvalidToken",
    "LeaseLost",
    "PayloadInvalid",
    "PayloadRejected",
    "PayloadTooLarge",
    "TaskDoesNotExist",
    "TaskTimedOut",
    "TaskTokenRefused",
]
