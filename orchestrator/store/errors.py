"""Errors the store raises (part of the tree drawn in :mod:`orchestrator.errors`).

OrchestratorError
├── LeaseLost            (the caller no longer holds the execution's lease)
├── BatchNotFound        (no batch with that id)
└── PayloadRejected      (nothing was stored)
    ├── PayloadTooLarge  (above payload_max_bytes: States.DataLimitExceeded)
    └── PayloadInvalid   (not storable JSON: NaN, non-string keys, NUL, ...)

They are defined in :mod:`orchestrator.errors` (which imports nothing of the
store, so the two never import each other) and re-exported here.
"""

from __future__ import annotations

from orchestrator.errors import (
    BatchNotFound,
    LeaseLost,
    PayloadInvalid,
    PayloadRejected,
    PayloadTooLarge,
)

__all__ = ["BatchNotFound", "LeaseLost", "PayloadInvalid", "PayloadRejected", "PayloadTooLarge"]
