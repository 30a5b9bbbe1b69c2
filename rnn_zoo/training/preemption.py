"""Stopping cleanly on SIGTERM / SIGINT (cluster preemption, Ctrl-C).

The loop asks :meth:`PreemptionWatcher.should_stop` after every step; when it
says yes, the loop saves a checkpoint at that step, waits for it, and raises
:class:`Preempted` (the binaries print one line and exit with 128 + the
signal's number).

* One process: Python handlers for SIGTERM and SIGINT note the signal; the
  step under way finishes first. A second Ctrl-C interrupts at once.
* Several processes (``jax.distributed``): JAX's preemption service already
  listens for SIGTERM and agrees on one step for every process
  (:func:`jax.experimental.multihost_utils.reached_preemption_sync_point`,
  which orbax uses too); Ctrl-C is forwarded to it as a SIGTERM, so every
  process stops at the same step.
"""

from __future__ import annotations

import os
import signal

from absl import logging
import jax
from jax.experimental import multihost_utils


class Preempted(Exception):
  """The run stopped on a signal after saving a checkpoint at ``step``."""

  def __init__(self, message: str, *, signum: int, step: int):
    super().__init__(message)
    self.signum, self.step = signum, step

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class PreemptionWatcher:
  """Context manager: installs the handlers, restores the old ones on exit."""

  def __init__(self):
    self.signum: int | None = None
    self._old = {}
    self.distributed = jax.process_count() > 1

  def _note(self, signum, frame):
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # the second Ctrl-C: stop now
    self.signum = signum
    logging.warning("received %s: finishing the current step, then saving a "
                    "checkpoint (Ctrl-C again to stop at once)",
                    signal.Signals(signum).name)

  def _forward(self, signum, frame):
    del frame
    if self.signum is not None:
      raise KeyboardInterrupt
    self.signum = signum
    os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption notifier hears it

  def __enter__(self):
    signals = [signal.SIGINT] if self.distributed else [signal.SIGTERM, signal.SIGINT]
    handler = self._forward if self.distributed else self._note
    for s in signals:
      try:
        self._old[s] = signal.signal(s, handler)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def __exit__(self, *exc):
    for s, old in self._old.items():
      signal.signal(s, old)
    self._old.clear()

  def should_stop(self, step: int) -> bool:
    """Whether to save and stop after ``step`` (every process gets the same
    answer for the same step)."""
    if self.distributed:
      try:
        stop = multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # the preemption service is disabled
        stop = False
      if stop and self.signum is None:
        self.signum = signal.SIGTERM
      return stop
    return self.signum is not None
