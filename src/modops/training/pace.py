"""Fitting a training phase into a wall-clock budget (``train.max_minutes``).

The same params train several times slower on a CPU without bf16 (AVX2 only) than on one
with AVX512-BF16 or AMX, so a fixed number of steps cannot promise a run length. With a
budget, a phase times its own first steps, and shrinks every epoch evenly when the planned
steps would not fit, then re-plans after each epoch from the measured step and validation
times. The learning-rate schedule is resized with it (``Optimizer.resize``), so a shortened
run still anneals to its end instead of stopping at a high learning rate. Steps only ever
shrink: a fast machine runs exactly the configured schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["steps_within", "Pacer", "PROBE_STEPS", "PROBE_HEADROOM"]

#: Steps timed before the first plan (after one step of warm-up, whose cost is atypical:
#: allocator and oneDNN primitive caches fill then).
PROBE_STEPS = 8
#: Share of the budget the first plan may use: validation has not been timed yet then, and
#: the plan made after the first epoch corrects the rest.
PROBE_HEADROOM = 0.9


def steps_within(
    budget_s: float,
    *,
    elapsed_s: float,
    step_s: float,
    epochs_left: int,
    val_s: float,
    steps: int,
    min_steps: int = 1,
) -> int:
    """Steps per remaining epoch that fit the budget, never more than ``steps``.

    Args:
        budget_s: The phase's budget in seconds.
        elapsed_s: Seconds already spent in the phase.
        step_s: Measured seconds per training step.
        epochs_left: Epochs still to run, each ``steps`` steps plus one validation.
        val_s: Measured (or estimated) seconds per validation.
        steps: The planned steps per epoch (an upper bound).
        min_steps: Floor, so that every epoch still trains.

    Returns:
        An int in ``[min(min_steps, steps), steps]``.
    """
    if epochs_left <= 0:
        return steps
    left = budget_s - elapsed_s - epochs_left * val_s
    fit = math.floor(left / (epochs_left * max(step_s, 1e-9))) if left > 0 else 0
    return max(min(steps, fit), min(min_steps, steps))


@dataclass
class Pacer:
    """Tracks one phase's steps against its budget; ``budget_s=None`` never changes the plan.

    Use: ``pacer.steps`` is the current steps per epoch; call :meth:`after_step` after each
    step of epoch 1 and :meth:`after_epoch` after each epoch (with its validation's seconds);
    both return the new steps per epoch when they shrink it, else None.
    """

    budget_s: float | None
    epochs: int
    steps: int
    probe_steps: int = PROBE_STEPS
    clock: Callable[[], float] = time.perf_counter
    start: float = field(init=False)
    planned_steps: int = field(init=False)
    _probe_from: tuple[int, float] | None = None
    _planned: bool = False

    def __post_init__(self) -> None:
        self.start, self.planned_steps = self.clock(), self.steps

    def elapsed(self) -> float:
        """Seconds since the phase started."""
        return self.clock() - self.start

    def after_step(self, step: int) -> int | None:
        """Call after step ``step`` (1-based) of epoch 1; plans once the probe has been timed."""
        if self.budget_s is None or self._planned:
            return None
        if self._probe_from is None:  # the first (warm-up) step is done: time the probe from here
            self._probe_from = (step, self.clock())
            return None
        first, t0 = self._probe_from
        if step - first < self.probe_steps:
            return None
        self._planned = True
        step_s = (self.clock() - t0) / (step - first)
        # Epoch 1 continues from here: its remaining steps count like a part of an epoch.
        total = steps_within(
            self.budget_s * PROBE_HEADROOM,
            elapsed_s=self.elapsed() - step * step_s,  # set-up time before the first step
            step_s=step_s,
            epochs_left=self.epochs,
            val_s=0.0,
            steps=self.steps,
            min_steps=step,
        )
        return self._shrink(total)

    def after_epoch(self, epoch: int, *, epoch_s: float, val_s: float, steps_done: int) -> int | None:
        """Call after epoch ``epoch`` with its wall time, its validation's share and its steps."""
        if self.budget_s is None or epoch >= self.epochs or steps_done <= 0:
            return None
        step_s = max(epoch_s - val_s, 0.0) / steps_done
        new = steps_within(
            self.budget_s,
            elapsed_s=self.elapsed(),
            step_s=step_s,
            epochs_left=self.epochs - epoch,
            val_s=val_s,
            steps=self.steps,
        )
        return self._shrink(new)

    def _shrink(self, new: int) -> int | None:
        if new >= self.steps:
            return None
        self.steps = new
        return new

    def summary(self) -> dict[str, float | int | None]:
        """For the run's record: the budget, the planned and the final steps per epoch."""
        return {"budget_s": self.budget_s, "planned_steps_per_epoch": self.planned_steps, "steps_per_epoch": self.steps}
