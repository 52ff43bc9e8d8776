"""Fixtures of the multihost tests: one lab (namespaces, PostgreSQL, Redis/Sentinel) per module.

Where network namespaces cannot be made (not root, no iproute2), the tests skip
with the reason locally and fail in CI (``CI`` set), so CI never passes by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.multihost.harness import LabUnavailable
from tests.multihost.services import Deployment, deployment


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployment]:
    """PostgreSQL on ``db``, Redis and Sentinels on ``r1``-``r3``; torn down after the module."""
    try:
        with deployment() as lab:
            yield lab
    except LabUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no network namespaces here: {exc}")
