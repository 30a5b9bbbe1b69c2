"""Metrics to TensorBoard (tensorboardX) and metrics.jsonl; progress lines.

Only process 0 writes. ``metrics.jsonl`` and ``trace.jsonl`` are strict
JSON: a non-finite value (a skipped NaN step's loss) is ``null``. On resume, ``metrics.jsonl`` lines past the restored
step (logged by the killed run after its last checkpoint) are dropped, so
the file reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Sequence

from absl import logging
import jax


def _truncate(path: str, keep) -> None:
  """Keeps the JSON lines of ``path`` for which ``keep(line)`` holds."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        if keep(json.loads(line)):
          kept.append(line)
      except (ValueError, KeyError, IndexError):
        pass  # a line cut by a kill
  with open(path, "w") as f:
    f.writelines(kept)


def _finite_or_none(x: float) -> float | None:
  """JSON has no NaN or Infinity: a non-finite value is written as null."""
  return x if math.isfinite(x) else None


def _json_safe(scalars: dict) -> dict:
  return {k: _finite_or_none(v) for k, v in scalars.items()}


def summary_writer_class() -> type:
  """tensorboardX's ``SummaryWriter``, imported without PyTorch.

  tensorboardX imports ``torch`` at import time when it is installed, only to
  accept torch tensors (which the zoo never passes): 1.6-3 s of every binary
  start. Unless the process already imported torch, the import runs with
  ``torch`` marked absent, and the mark is removed afterwards, so later
  ``import torch`` works as usual.
  """
  if "torch" in sys.modules or "tensorboardX" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    del sys.modules["torch"]
  return SummaryWriter


class MetricWriter:
  """Writes scalars to ``workdir/tensorboard`` and ``workdir/metrics.jsonl``."""

  def __init__(self, workdir: str, *, resume_step: int = 0):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb: Any = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    _truncate(self.path, lambda d: d["step"] <= resume_step)
    _truncate(os.path.join(workdir, "trace.jsonl"),
              lambda d: d["steps"][-1] <= resume_step)
    self._tb = summary_writer_class()(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict, split: str = "train") -> None:
    if not self.active:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "split": split, **_json_safe(scalars)},
                         allow_nan=False) + "\n")
    for k, v in scalars.items():
      self._tb.add_scalar(f"{split}/{k}", v, step)
    self._tb.flush()

  def write_trace(self, steps: Sequence[int], values: dict) -> None:
    """Per-step values (e.g. the gradient norm) to ``workdir/trace.jsonl``."""
    if not self.active:
      return
    with open(os.path.join(os.path.dirname(self.path), "trace.jsonl"), "a") as f:
      f.write(json.dumps({"steps": [int(s) for s in steps],
                          **{k: [_finite_or_none(float(x)) for x in v]
                             for k, v in values.items()}}, allow_nan=False) + "\n")

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class Progress:
  """A log line every call to ``report`` (step, loss, steps/s, ETA), and a
  tqdm bar when stderr is a terminal. Only process 0 shows anything."""

  def __init__(self, start_step: int, num_steps: int):
    self.active = jax.process_index() == 0
    self.start, self.total = start_step, num_steps
    self.t0 = time.perf_counter()
    self._bar = None
    if self.active and sys.stderr.isatty():
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm(total=num_steps, initial=start_step, unit="step",
                       dynamic_ncols=True)

  def report(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    done = step - self.start
    elapsed = time.perf_counter() - self.t0
    rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
    eta = (self.total - step) / rate if rate == rate and rate > 0 else float("nan")
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "?"
    text = " ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    logging.info("step %d/%d %s | %.2f steps/s ETA %s", step, self.total, text,
                 rate, eta_text)
    if self._bar is not None:
      self._bar.n = step
      self._bar.set_postfix_str(text[:60])
      self._bar.refresh()

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
