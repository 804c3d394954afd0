"""train.max_minutes: planning steps into a budget, resizing the schedule, and a budgeted fit."""

from __future__ import annotations

import pytest
import torch

from modops.runtime import resolve_runtime
from modops.training import get_trainer
from modops.training.loop import Optimizer
from modops.training.pace import PROBE_HEADROOM, Pacer, steps_within

from .conftest import CLASSES, make_cfg, make_data


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_steps_within_fits_the_budget():
    # 100 s left after 10 s spent; 2 epochs, each with 5 s of validation: (100 - 10 - 10) / 2 / 0.5 s = 80 steps.
    assert steps_within(100, elapsed_s=10, step_s=0.5, epochs_left=2, val_s=5, steps=500) == 80


def test_steps_within_never_exceeds_the_plan_nor_drops_below_the_floor():
    assert steps_within(1e9, elapsed_s=0, step_s=1, epochs_left=3, val_s=0, steps=50) == 50
    assert steps_within(10, elapsed_s=20, step_s=1, epochs_left=3, val_s=0, steps=50) == 1
    assert steps_within(10, elapsed_s=20, step_s=1, epochs_left=3, val_s=0, steps=50, min_steps=7) == 7
    assert steps_within(10, elapsed_s=0, step_s=1, epochs_left=0, val_s=0, steps=50) == 50


def test_pacer_without_budget_never_changes_the_plan():
    clock = FakeClock()
    pacer = Pacer(None, epochs=2, steps=40, clock=clock)
    for step in range(1, 41):
        clock.t += 100
        assert pacer.after_step(step) is None
    assert pacer.after_epoch(1, epoch_s=4000, val_s=10, steps_done=40) is None
    assert pacer.steps == 40


def test_pacer_plans_after_its_probe_and_replans_after_each_epoch():
    clock = FakeClock()
    pacer = Pacer(100.0, epochs=2, steps=100, probe_steps=4, clock=clock)
    clock.t += 5  # set-up before the first step
    for step in range(1, 5):  # the warm-up step, then 3 timed ones: no plan yet
        clock.t += 1
        assert pacer.after_step(step) is None
    clock.t += 0.5  # step 5: the 4 timed steps took 3.5 s -> 0.875 s a step
    new = pacer.after_step(5)
    # 90 s (headroom) less what the 5 steps at 0.875 s do not explain of the 9.5 s elapsed, over 2 epochs
    expected = int((100 * PROBE_HEADROOM - (9.5 - 5 * 0.875)) / (2 * 0.875))
    assert new == expected == pacer.steps
    assert pacer.after_step(6) is None  # plans once
    # Epoch 1 ran `expected` steps at 0.875 s plus 8 s of validation; re-plan the last epoch.
    clock.t = 1000 + 5 + expected * 0.875 + 8
    again = pacer.after_epoch(1, epoch_s=expected * 0.875 + 8, val_s=8, steps_done=expected)
    left = 100 - (5 + expected * 0.875 + 8) - 8
    assert (again or pacer.steps) == min(expected, int(left / 0.875))
    assert pacer.after_epoch(2, epoch_s=1, val_s=0, steps_done=1) is None  # nothing left to plan
    assert pacer.summary()["planned_steps_per_epoch"] == 100


def test_resized_schedule_matches_a_fresh_one_and_still_anneals():
    runtime = resolve_runtime("cpu", "fp32")
    cfg = make_cfg("supervised", lr=0.01)
    net = torch.nn.Linear(2, 2)
    opt = Optimizer(net.parameters(), cfg=cfg, total_steps=100, runtime=runtime)
    for _ in range(10):
        opt.step(net(torch.ones(1, 2)).sum())
    opt.resize(40)
    fresh = Optimizer(torch.nn.Linear(2, 2).parameters(), cfg=cfg, total_steps=40, runtime=runtime)
    for _ in range(10):
        fresh.step(torch.zeros((), requires_grad=True))
    assert opt.lr == pytest.approx(fresh.lr)
    for _ in range(30):
        opt.step(net(torch.ones(1, 2)).sum())
    assert opt.lr < 0.01 * 0.01  # annealed at the new end (a 100-step schedule would be near its peak)


@pytest.mark.parametrize("name", ["supervised", "mean_teacher", "ohem_cascade"])
def test_a_budget_too_small_shortens_every_epoch_but_still_trains(name):
    # 20 planned steps an epoch; a 60-microsecond budget keeps only the probe in epoch 1 and one step after.
    cfg = make_cfg(name, samples_per_epoch=320, max_minutes=1e-6)
    result = get_trainer(name)(make_data(), cfg=cfg, class_names=CLASSES)
    steps = [h["steps"] for h in result.history if h["phase"] in ("train", "stage1", "mean_teacher")]
    assert len(steps) == cfg.epochs
    assert steps[0] < 20 and all(s == 1 for s in steps[1:])
    pace = result.info["pace"]
    first = pace["stage1"] if name == "ohem_cascade" else pace
    assert first["planned_steps_per_epoch"] == 20 and first["steps_per_epoch"] == 1
    assert all(torch.isfinite(p).all() for net in result.networks.values() for p in net.parameters())


def test_a_generous_budget_changes_nothing():
    data = make_data()
    free = get_trainer("supervised")(data, cfg=make_cfg("supervised"), class_names=CLASSES)
    capped = get_trainer("supervised")(data, cfg=make_cfg("supervised", max_minutes=60), class_names=CLASSES)
    assert [h["steps"] for h in capped.history] == [h["steps"] for h in free.history]
    free_state, capped_state = free.networks["model"].state_dict(), capped.networks["model"].state_dict()
    assert free_state.keys() == capped_state.keys()
    assert all(torch.equal(free_state[k], capped_state[k]) for k in free_state)
