"""``num_steps`` from a wall-clock budget (``config.time_budget_minutes``).

A preset sized in steps finishes in 2 minutes on one machine and 30 on
another. With a time budget, the loop measures this machine before training:
the train step (compiled once and timed on a throwaway state, so the run's
own steps and keys are untouched), one evaluation, one sample, one
checkpoint save and one metrics row, and then fixes ``num_steps`` to the
steps that fit the budget, counted from the process's start and leaving the
time for the real step's compilation, the periodic work and a margin. The
cosine schedule is then sized from that ``num_steps`` as from any other.

The plan is written to ``<workdir>/budget.json`` before the first step and
read back by every later start of the same run, so a resumed run keeps the
same ``num_steps`` and schedule and ends bit-identical to an uninterrupted
one, and to a run given ``num_steps`` equal to the planned value (the plan
only chooses the number).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import time

from rnn_zoo import cache
from rnn_zoo.errors import UserError

PLAN_FILE = "budget.json"
# Kept free of the budget for what the plan cannot see: the final report,
# and the machine's drift. Measured on a 2-core VM (char-rnn default,
# 2026-12-08): runs went 2-12% slower than their 2-second probe (the rate
# fell over the run), so 4% let one of four 14-minute runs take 15 min 11 s.
MARGIN = 0.08

_IMPORTED_AT = time.monotonic()


def process_elapsed() -> float:
  """Seconds since this process started (Linux: from ``/proc``; elsewhere
  from when this module was imported, which misses the interpreter's and
  the imports' start-up)."""
  try:
    with open("/proc/self/stat", encoding="ascii") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    started_ticks = int(fields[19])  # field 22 of proc(5): starttime
    with open("/proc/uptime", encoding="ascii") as f:
      uptime = float(f.read().split()[0])
    elapsed = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    if elapsed >= 0:
      return elapsed
  except (OSError, ValueError, IndexError):
    pass
  return time.monotonic() - _IMPORTED_AT


def plan_steps(*, budget_s: float, elapsed_s: float, compile_s: float, step_s: float,
               periodic: dict[str, tuple[float, int]], cap: int,
               margin: float = MARGIN) -> int:
  """The training steps that fit ``budget_s`` seconds of wall clock.

  ``elapsed_s`` are already spent; ``compile_s`` is what the run's own train
  step will take to compile; each step costs ``step_s``, and each
  ``name: (seconds, every)`` of ``periodic`` (an evaluation, a sample, a
  checkpoint, a metrics row) costs ``seconds`` every ``every`` steps and once
  more at the end. ``margin`` of the budget is kept free. At most ``cap``;
  0 when nothing fits.
  """
  left = (budget_s * (1 - margin) - elapsed_s - compile_s
          - sum(seconds for seconds, _ in periodic.values()))
  per_step = step_s + sum(seconds / every for seconds, every in periodic.values())
  if left <= 0 or per_step <= 0:
    return 0
  return max(0, min(int(left / per_step), cap))


def load_plan(workdir: str) -> dict | None:
  """The plan an earlier start of this run wrote, or None."""
  path = os.path.join(workdir, PLAN_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      plan = json.load(f)
    steps = plan["num_steps"]
  except (OSError, ValueError, KeyError, TypeError):
    raise UserError(f"{path} is not a time-budget plan this library wrote (unreadable "
                    "or without num_steps); delete it to measure the machine again, "
                    "or use another --workdir") from None
  if not isinstance(steps, int) or steps < 1:
    raise UserError(f"{path} holds num_steps={steps!r}, not a positive integer; delete "
                    "it to measure the machine again")
  return plan


def save_plan(workdir: str, plan: dict) -> None:
  """Writes the plan atomically (a killed start leaves none or all of it)."""
  path = pathlib.Path(workdir) / PLAN_FILE
  if not cache.write_atomically(path, (json.dumps(plan, indent=1) + "\n").encode()):
    raise UserError(f"cannot write the time-budget plan {str(path)!r}")


def describe(plan: dict) -> str:
  """One line: what was measured and what it chose."""
  periodic = ", ".join(f"{name} {p['seconds']:.3g} s every {p['every']}"
                       for name, p in plan["periodic"].items())
  return (f"time budget {plan['time_budget_minutes']:g} min: {plan['num_steps']:,} steps "
          f"(train step {plan['step_seconds'] * 1e3:.1f} ms, {periodic}; compile "
          f"{plan['compile_seconds']:.1f} s, {plan['elapsed_seconds']:.1f} s spent before "
          f"the plan; at most {plan['cap']:,}) on {plan['device']} ({plan['host']})")


def new_plan(*, minutes: float, num_steps: int, cap: int, step_s: float,
             periodic: dict[str, tuple[float, int]], compile_s: float, elapsed_s: float,
             probe_steps: int, device: str) -> dict:
  """The record :func:`save_plan` writes: the choice and what it was made of."""
  return {"time_budget_minutes": minutes, "num_steps": num_steps, "cap": cap,
          "step_seconds": step_s,
          "periodic": {name: {"seconds": seconds, "every": every}
                       for name, (seconds, every) in periodic.items()},
          "compile_seconds": compile_s, "elapsed_seconds": elapsed_s,
          "probe_steps": probe_steps, "margin": MARGIN, "device": device,
          "host": socket.gethostname(),
          "date": datetime.datetime.now().isoformat(timespec="seconds")}
