"""The workdir of a run: checked before anything starts, and locked.

One run at a time per workdir: each process of a run holds an exclusive
``fcntl`` lock on ``<workdir>/.lock-<process index>`` for the run's life, so
starting the same command again (a second terminal, a resubmitted job) stops
at once and names the run that holds it. The kernel drops the lock when its
process dies, so a killed run never blocks its restart.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys

import jax

from rnn_zoo.errors import UserError


class WorkdirBusyError(UserError):
  """Another run holds the workdir."""


def check_workdir(workdir: str) -> str:
  """Creates ``workdir`` if needed; a path that is not a writable directory
  is a :class:`UserError` naming it. Returns its absolute path."""
  if not isinstance(workdir, str) or not workdir:
    raise UserError(f"workdir must be a directory path, got {workdir!r}")
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"workdir {workdir!r} exists and is not a directory")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise UserError(f"workdir {workdir!r} cannot be created: {e.strerror}") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"workdir {workdir!r} is not writable")
  return path


class WorkdirLock:
  """Holds ``<workdir>/.lock-<process index>`` while the run lives.

  Usable as a context manager; :meth:`acquire` raises
  :class:`WorkdirBusyError` naming the holder (pid, host, start time and
  command line, which the holder writes into the lock file).
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, f".lock-{jax.process_index()}")
    self._fd: int | None = None

  def acquire(self) -> "WorkdirLock":
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise WorkdirBusyError(
          f"workdir {os.path.dirname(self.path)!r} is in use by another run "
          f"({holder}); wait for it to end or use another --workdir") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _read_holder(fd) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except (ValueError, OSError):
    info = {}
  if not info:
    return "holder unknown"
  return (f"pid {info.get('pid')} on {info.get('host')}, started "
          f"{info.get('started')}: {info.get('command')}")
