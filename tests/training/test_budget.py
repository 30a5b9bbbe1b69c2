"""rnn_zoo.training.budget: the arithmetic of a wall-clock plan and its file
(the binaries' use of it: tests/training/test_char_rnn_binary.py)."""

import json
import time

import pytest

from rnn_zoo.errors import UserError
from rnn_zoo.training import budget


def test_plan_counts_the_start_the_compile_and_every_periodic_cost():
  # 600 s, 4% kept: 576 - 30 spent - 10 compile - (2 + 1) once at the end
  # = 533 s for steps of 0.1 + 2/100 + 1/50 = 0.14 s.
  steps = budget.plan_steps(budget_s=600, elapsed_s=30, compile_s=10, step_s=0.1,
                            periodic={"eval": (2.0, 100), "checkpoint": (1.0, 50)},
                            cap=10**9, margin=0.04)
  assert steps == int(533 / 0.14) == 3807
  assert budget.plan_steps(budget_s=600, elapsed_s=30, compile_s=10, step_s=0.1,
                           periodic={}, cap=1000) == 1000
  assert budget.plan_steps(budget_s=60, elapsed_s=58, compile_s=1, step_s=0.1,
                           periodic={}, cap=1000) == 0
  assert budget.plan_steps(budget_s=600, elapsed_s=0, compile_s=0, step_s=0.1,
                           periodic={}, cap=10**9, margin=0) == 6000


def test_process_elapsed_counts_from_the_process_start():
  a = budget.process_elapsed()
  time.sleep(0.05)
  b = budget.process_elapsed()
  # /proc counts in clock ticks (10 ms): the interpreter and the imports
  # before this test took more than that.
  assert a > 0.01 and b >= a


def test_a_plan_round_trips_and_a_bad_file_is_one_error_naming_it(tmp_path):
  assert budget.load_plan(str(tmp_path)) is None
  plan = budget.new_plan(minutes=14, num_steps=1234, cap=20000, step_s=0.05,
                         periodic={"eval": (1.5, 1000)}, compile_s=8.0, elapsed_s=20.0,
                         probe_steps=40, device="cpu")
  budget.save_plan(str(tmp_path), plan)
  assert budget.load_plan(str(tmp_path)) == json.loads(json.dumps(plan))
  assert budget.describe(plan).startswith(
      "time budget 14 min: 1,234 steps (train step 50.0 ms, eval 1.5 s every 1000; "
      "compile 8.0 s, 20.0 s spent before the plan; at most 20,000) on cpu")
  path = tmp_path / budget.PLAN_FILE
  for text in ("{not json", "[]", '{"num_steps": 0}', '{"num_steps": "5"}'):
    path.write_text(text)
    with pytest.raises(UserError, match=f"{path}"):
      budget.load_plan(str(tmp_path))


def test_a_negative_budget_is_an_error_naming_the_field():
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config("smoke")
  c.time_budget_minutes = -1.0
  with pytest.raises(UserError, match=r"^config.time_budget_minutes must be a number >= 0, got -1.0$"):
    loop._check_training_config(c)
