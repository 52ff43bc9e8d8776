"""The failure guard of a batch: an exponential moving average of its failure rate.

The leader folds in the executions that ended each time it looks (counts, not
events: ``k`` executions of which ``f`` failed count as ``k`` steps at rate
``f/k``). The average is bias-corrected, so early on it is the plain failure
rate of what has ended, and later it weighs the last ``~1/smoothing``
executions most. At the soft threshold it warns (logged, stored on the batch);
at the hard threshold it pauses the batch. It judges only once ``min_finished``
executions have ended since the batch started or was last resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What the failure guard makes of the rate."""

    OK = "OK"
    WARN = "WARN"
    PAUSE = "PAUSE"


@dataclass(frozen=True, kw_only=True)
class GuardSettings:
    """The guard's thresholds (see ``BatchOptions`` for their defaults).

    Attributes:
        warn_threshold: rate at or above which it warns; None: never.
        pause_threshold: rate at or above which it pauses the batch; None: never.
        smoothing: the EMA's weight of each new execution, in (0, 1].
        min_finished: ended executions needed before it judges at all.
    """

    warn_threshold: float | None
    pause_threshold: float | None
    smoothing: float
    min_finished: int

    def check(self) -> None:
        """Refuse thresholds that cannot work.

        Raises:
            ValueError: a threshold outside [0, 1], a smoothing outside (0, 1],
                or a negative ``min_finished``.
        """
        for name in ("warn_threshold", "pause_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"failure_{name} must be between 0 and 1, not {value!r}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"failure_smoothing must be in (0, 1], not {self.smoothing!r}")
        if self.min_finished < 0:
            raise ValueError("failure_min_finished must not be negative")


@dataclass(frozen=True, kw_only=True)
class GuardState:
    """The EMA of the failure rate, before bias correction, and how many it has seen."""

    raw: float = 0.0
    observed: int = 0

    def observe(self, finished: int, failed: int, smoothing: float) -> GuardState:
        """Fold in ``finished`` more ended executions, ``failed`` of which failed."""
        if finished <= 0:
            return self
        decay = (1.0 - smoothing) ** finished
        raw = decay * self.raw + (1.0 - decay) * (failed / finished)
        return GuardState(raw=raw, observed=self.observed + finished)

    def rate(self, smoothing: float) -> float | None:
        """The bias-corrected average failure rate (None before anything ended)."""
        if self.observed == 0:
            return None
        return self.raw / (1.0 - (1.0 - smoothing) ** self.observed)

    @classmethod
    def stored(cls, rate: float | None, observed: int, smoothing: float) -> GuardState:
        """The state behind a stored (rate, observed) pair."""
        if rate is None or observed <= 0:
            return cls()
        return cls(raw=rate * (1.0 - (1.0 - smoothing) ** observed), observed=observed)

    def judge(self, settings: GuardSettings, *, armed: bool) -> Verdict:
        """Where the rate stands against the thresholds."""
        rate = self.rate(settings.smoothing)
        if rate is None or self.observed < settings.min_finished:
            return Verdict.OK
        pause = settings.pause_threshold
        if armed and pause is not None and rate >= pause:
            return Verdict.PAUSE
        if settings.warn_threshold is not None and rate >= settings.warn_threshold:
            return Verdict.WARN
        return Verdict.OK


__all__ = ["GuardSettings", "GuardState", "Verdict"]
