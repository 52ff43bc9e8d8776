"""The failure rate of a batch over time: ended executions in equal time buckets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

#: Statuses that count as failures in the chart (as the batch guard counts them).
FAILED: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
#: Narrowest bucket, so executions that all end at once still make a chart.
_NARROWEST: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Bucket:
    """Executions that ended in ``[start, end)``; ``rate`` is failed / ended (0 when none)."""

    start: datetime
    end: datetime
    ended: int
    failed: int

    @property
    def rate(self) -> float:
        """The share of failures among the ended executions."""
        return self.failed / self.ended if self.ended else 0.0


def failure_rate(ends: Iterable[tuple[datetime, str]], buckets: int = 20) -> list[Bucket]:
    """Split the span from the first to the last end into ``buckets`` equal buckets.

    Args:
        ends: (ended_at, status) of each ended execution.
        buckets: how many buckets (at least 1).

    Returns:
        The buckets, oldest first; empty when nothing ended.
    """
    points = sorted(ends)
    if not points:
        return []
    first, last = points[0][0], points[-1][0]
    width = max((last - first) / buckets, _NARROWEST)
    counts = [[0, 0] for _ in range(buckets)]
    for at, status in points:
        index = min(int((at - first) / width), buckets - 1)
        counts[index][0] += 1
        counts[index][1] += status in FAILED
    return [
        Bucket(first + width * i, first + width * (i + 1), ended, failed)
        for i, (ended, failed) in enumerate(counts)
    ]


__all__ = ["FAILED", "Bucket", "failure_rate"]
