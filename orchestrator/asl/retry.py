"""Retry and Catch decisions: which retrier or catcher handles an error, and the delay.

Spec ("Retrying after an error"): the first retrier whose ErrorEquals matches is the
one used; once its MaxAttempts are spent, the state's catchers are tried. The delay
before retry ``n`` (0-based) is ``IntervalSeconds * BackoffRate**n``, capped by
MaxDelaySeconds; JitterStrategy FULL draws it uniformly from ``[0, delay]``.

AWS rules matched here: ``States.ALL`` matches every error but ``States.Runtime``
(see :mod:`orchestrator.asl.errors` for why ``States.DataLimitExceeded`` is matched,
as recorded against AWS); ``States.Runtime`` is never retried or caught; and
``States.TaskFailed`` "acts as a wildcard that matches any known error name except
for States.Timeout" when the error comes from a Task.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from orchestrator.asl import errors
from orchestrator.asl.model import Catcher, Retrier


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """Retry after ``delay`` seconds, counting the attempt against retrier ``index``."""

    index: int
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchDecision:
    """Hand the error to ``catcher`` (go to its Next with the error at its ResultPath)."""

    catcher: Catcher


def matches(error_equals: tuple[str, ...], name: str, *, from_task: bool = False) -> bool:
    """Whether an ErrorEquals list matches the error ``name``."""
    if name == errors.RUNTIME:
        return False
    if name in error_equals:
        return True
    if errors.ALL in error_equals and name not in errors.UNCATCHABLE_BY_ALL:
        return True
    return (
        from_task
        and errors.TASK_FAILED in error_equals
        and name not in (errors.TIMEOUT, errors.HEARTBEAT_TIMEOUT)
        and name not in errors.UNCATCHABLE_BY_ALL
    )


#: The longest back-off when a retrier has no MaxDelaySeconds: AWS's largest
#: IntervalSeconds (99999999 s), past which no execution runs anyway.
MAX_BACKOFF_SECONDS = 99_999_999.0


def backoff(retrier: Retrier, attempts_made: int, rng: random.Random | None) -> float:
    """Seconds to wait before the next attempt, given the attempts already retried.

    ``IntervalSeconds * BackoffRate ** n`` is compared with its cap in log space, so a
    retrier with thousands of attempts never overflows a float.
    """
    cap = retrier.max_delay_seconds
    cap = MAX_BACKOFF_SECONDS if cap is None else min(cap, MAX_BACKOFF_SECONDS)
    growth = attempts_made * math.log(retrier.backoff_rate)
    if math.log(retrier.interval_seconds) + growth >= math.log(cap):
        delay = cap
    else:
        # Below the cap, so the exact power cannot overflow.
        delay = min(retrier.interval_seconds * retrier.backoff_rate**attempts_made, cap)
    if retrier.jitter == "FULL":
        delay = (rng or random.Random()).uniform(0.0, delay)  # noqa: S311 - not for security
    return delay


def decide(
    retriers: tuple[Retrier, ...],
    catchers: tuple[Catcher, ...],
    name: str,
    counts: list[int],
    rng: random.Random | None,
    *,
    from_task: bool = False,
) -> RetryDecision | CatchDecision | None:
    """Decide what happens to error ``name``; None means the state fails with it.

    ``counts[i]`` is how many times retrier ``i`` has already retried this state.
    """
    for index, retrier in enumerate(retriers):
        if matches(retrier.error_equals, name, from_task=from_task):
            made = counts[index] if index < len(counts) else 0
            if made < retrier.max_attempts:
                return RetryDecision(index=index, delay=backoff(retrier, made, rng))
            break
    for catcher in catchers:
        if matches(catcher.error_equals, name, from_task=from_task):
            return CatchDecision(catcher=catcher)
    return None
