"""Orbax checkpoints that lose nothing.

* Saves every K steps and at the end, keeps the latest N, asynchronously;
  the config (and a vocabulary, where the workload has one) is saved beside
  the train state in every checkpoint.
* A kill during an async save leaves an ``*.orbax-checkpoint-tmp`` folder
  that orbax ignores (the next start removes it, saying so). A save that
  fails to write (a full disk, a file size limit) ends the run with one
  line naming the step and the checkpoints kept; a finished checkpoint with damaged files raises on
  restore, so :meth:`Checkpointer.restore_latest` falls back to older steps
  with a warning naming each one it skips, and stops with an error (never
  silently starts from scratch) when none can be restored.
* A workdir whose saved config differs from the requested one in a field that
  fixes the model's shape, or whose saved vocabulary differs from the data's,
  is an error saying what changed (checked before the state is read, so a
  changed vocabulary is never taken for damage).
* Bit rot: once a save has finished, the SHA-256 of every file of its step
  folder goes to ``digests/<step>.json``; a restore checks them first, and a
  step whose files changed is damaged (the walk falls back to the previous
  one, naming it). Orbax itself restores flipped bytes without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging as logging_std
import os
import shutil
import sys
from typing import Any, Callable, Sequence

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from rnn_zoo.errors import UserError


class CheckpointError(RuntimeError):
  """No usable checkpoint in a workdir that holds checkpoints."""


class ConfigMismatchError(UserError):
  """The workdir was made with a different model shape."""


class DigestMismatchError(RuntimeError):
  """A finished checkpoint's files changed since they were written."""


DIGESTS = "digests"  # the folder of per-step digests, beside the step folders


def step_digest(step_dir: str) -> dict[str, str]:
  """``{relative path: sha256}`` of every file under ``step_dir``."""
  out = {}
  for root, dirs, files in os.walk(step_dir):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      out[os.path.relpath(path, step_dir)] = h.hexdigest()
  return out


def _remove_digest(directory: str, step: int) -> None:
  try:
    os.remove(os.path.join(directory, DIGESTS, f"{step}.json"))
  except FileNotFoundError:
    pass


def verify_step(directory: str, step: int) -> bool:
  """Checks a step's files against its digest. Returns False when it has
  none (saved before digests existed, or killed between the end of the save
  and the digest); raises :class:`DigestMismatchError` naming the first file
  that differs."""
  path = os.path.join(directory, DIGESTS, f"{step}.json")
  try:
    with open(path, encoding="utf-8") as f:
      want = json.load(f)
  except (OSError, ValueError):
    return False
  got = step_digest(os.path.join(directory, str(step)))
  for name in sorted(set(want) | set(got)):
    if want.get(name) != got.get(name):
      what = ("is missing" if name not in got else "was added" if name not in want
              else "changed since it was written")
      raise DigestMismatchError(f"file {name} of step {step} {what} (digest "
                                f"{os.path.relpath(path, directory)})")
  return True


def describe_vocab_change(saved: Any, requested: Any) -> str:
  """What differs between two vocabularies (JSON: a dict holding a list of
  symbols, as ``Vocab.to_json`` writes), in words."""
  def symbols(v):
    lists = [x for x in v.values() if isinstance(x, list)] if isinstance(v, dict) else []
    return lists[0] if len(lists) == 1 else None
  a, b = symbols(saved), symbols(requested)
  if a is None or b is None:
    return "the saved and the requested vocabularies differ"
  new, gone = [x for x in b if x not in set(a)], [x for x in a if x not in set(b)]
  parts = [f"{len(a)} symbols saved, {len(b)} now"]
  show = lambda xs: ", ".join(repr(x) for x in xs[:8]) + (", ..." if len(xs) > 8 else "")
  if new:
    parts.append(f"new: {show(new)}")
  if gone:
    parts.append(f"gone: {show(gone)}")
  if not new and not gone:
    parts.append("the same symbols in another order")
  return "; ".join(parts)


# What a write that could not finish says (tensorstore's wording, errno 27/28).
_WRITE_FAILURES = ("Failed writing", "Failed to write", "No space left", "File too large")


class _WriteFailureTracebacks(logging_std.Filter):
  """Keeps the message of a record whose exception is a failed write, drops
  its traceback: orbax's background threads and asyncio each log the same
  failure with a traceback (hundreds of lines in all) before
  :meth:`Checkpointer._finish` reports it in one line. asyncio's "Task
  exception was never retrieved" records of such a failure (one per array
  that was being written, two lines each, logged when the dead save's tasks
  are collected: 0 to 30 of them by timing) are dropped whole."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and any(w in str(exc) for w in _WRITE_FAILURES):
      if record.name == "asyncio" and "never retrieved" in str(record.msg):
        return False
      record.msg = f"{record.getMessage()}: {type(exc).__name__}: {str(exc)[:200]}"
      record.args, record.exc_info, record.exc_text = (), None, None
    return True


def _closed_loop_callback(unraisable) -> bool:
  """A callback from tensorstore's writer threads into the event loop of an
  orbax save that has already ended (a failed save, or the interpreter
  exiting): asyncio's ``RuntimeError('Event loop is closed')``, harmless."""
  exc = unraisable.exc_value
  return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def quiet_write_failure_tracebacks() -> None:
  """Installs the filter on the loggers orbax and asyncio write to, and an
  unraisable-exception hook that drops only :func:`_closed_loop_callback`'s
  case (each was printed with its traceback after a failed save); once."""
  for name in ("absl", "asyncio"):
    logger = logging_std.getLogger(name)
    if not any(isinstance(f, _WriteFailureTracebacks) for f in logger.filters):
      logger.addFilter(_WriteFailureTracebacks())
  previous = sys.unraisablehook
  if getattr(previous, "_rnn_zoo_quiet", False):
    return

  def hook(unraisable):
    if not _closed_loop_callback(unraisable):
      previous(unraisable)

  hook._rnn_zoo_quiet = True  # type: ignore[attr-defined]
  sys.unraisablehook = hook


def _remove_unfinished(directory: str) -> None:
  """Removes the ``*.orbax-checkpoint-tmp`` folders a killed or failed save
  left (the workdir lock guarantees no other run is writing them)."""
  try:
    names = os.listdir(directory)
  except OSError:
    return
  for name in sorted(names):
    if name.endswith(".orbax-checkpoint-tmp"):
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
      logging.info("removed the unfinished checkpoint %s (a save that was killed or "
                   "failed)", os.path.join(directory, name))


def _jsonable(tree):
  return json.loads(json.dumps(tree, default=str))


class Checkpointer:
  """Saves and restores ``TrainState`` + config (+ vocab) under ``directory``."""

  def __init__(self, directory: str, *, save_every: int, keep: int,
               async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self.save_every = save_every
    self.saved_config = None  # the config of the restored checkpoint
    self.log_window: list = []      # its per-step metrics not yet in a log row
    self._undigested: list = []     # steps saved whose digest is not written yet
    quiet_write_failure_tracebacks()
    if jax.process_index() == 0:
      _remove_unfinished(self.directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True,
            enable_async_checkpointing=async_save))

  # -- saving ----------------------------------------------------------------
  def save(self, step: int, state: Any, config: dict, vocab: Any = None,
           force: bool = False, log_window: Any = None) -> bool:
    """Saves at ``step`` (async). Returns whether a save started.

    ``log_window``: per-step metrics logged since the last metrics row (a
    checkpoint made between two log steps, on a signal, keeps them so that
    the resumed run's next row averages the same steps).
    """
    if not force and step % self.save_every:
      return False
    items = {"state": ocp.args.StandardSave(state),
             "config": ocp.args.JsonSave(_jsonable(config))}
    if vocab is not None:
      items["vocab"] = ocp.args.JsonSave(_jsonable(vocab))
    if log_window:
      items["log_window"] = ocp.args.JsonSave(_jsonable(log_window))
    # Orbax finishes the previous async save before it starts this one: its
    # files are final, so their digest is taken now.
    self._finish()
    self._write_digests()
    if jax.process_index() == 0:
      _remove_digest(self.directory, step)  # a stale one of an older save at this step
    started = self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    if started:
      self._undigested.append(step)
    return started

  def _write_digests(self) -> None:
    """Digests of the finished saves that have none yet (process 0)."""
    pending, self._undigested = self._undigested, []
    if jax.process_index() != 0:
      return
    folder = os.path.join(self.directory, DIGESTS)
    os.makedirs(folder, exist_ok=True)
    for step in pending:
      step_dir = os.path.join(self.directory, str(step))
      if not os.path.isdir(step_dir):  # removed by max_to_keep meanwhile
        continue
      tmp = os.path.join(folder, f".{step}.json.tmp")
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(step_digest(step_dir), f, indent=0, sort_keys=True)
      os.replace(tmp, os.path.join(folder, f"{step}.json"))
    kept = {str(s) for s in self._manager.all_steps()}
    for name in os.listdir(folder):
      if name.endswith(".json") and name[:-5] not in kept:
        os.remove(os.path.join(folder, name))

  def verify(self, step: int) -> bool:
    return verify_step(self.directory, step)

  def _finish(self) -> None:
    """Waits for the async save under way; a save that could not write its
    files becomes one UserError naming the step and what is kept (orbax
    raised its writer's error, with hundreds of lines of its async
    machinery's tracebacks at exit)."""
    try:
      self._manager.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as e:
      failed = self._undigested[-1] if self._undigested else None
      self._undigested = self._undigested[:-1]
      kept = [s for s in self._finished_steps() if s != failed]
      reason = str(e).split("\n")[0]
      reason = reason[:240] + ("..." if len(reason) > 240 else "")
      self._abandon()
      then = (f"the checkpoints at steps {kept} are kept: free disk space (or raise "
              "the file size limit) and rerun to resume from the last of them"
              if kept else "there is no earlier checkpoint: free disk space (or raise "
              "the file size limit) and rerun to start again")
      raise UserError(f"saving the checkpoint at step {failed} in {self.directory} "
                      f"failed ({type(e).__name__}: {reason}); {then}") from None

  def _finished_steps(self) -> list[int]:
    try:
      return sorted(int(n) for n in os.listdir(self.directory) if n.isdigit())
    except OSError:
      return []

  def _abandon(self) -> None:
    """Stops orbax's background writers after a failed save, so that the
    process exits without their tracebacks."""
    try:
      self._manager.close()
    except Exception:  # pylint: disable=broad-except
      pass  # the same failure again: already reported

  def wait(self) -> None:
    self._finish()
    self._write_digests()

  def close(self) -> None:
    self._finish()
    self._write_digests()
    self._manager.close()

  # -- restoring -------------------------------------------------------------
  def steps(self) -> list[int]:
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def _set_aside(self, step: int) -> None:
    """Renames a damaged step folder to ``damaged-<step>[-k]`` (kept for
    inspection, out of orbax's way so the step can be saved again)."""
    if jax.process_index() != 0:
      return
    src = os.path.join(self.directory, str(step))
    dst = os.path.join(self.directory, f"damaged-{step}")
    k = 0
    while os.path.exists(dst):
      k += 1
      dst = os.path.join(self.directory, f"damaged-{step}-{k}")
    os.rename(src, dst)
    _remove_digest(self.directory, step)
    logging.warning("moved the damaged checkpoint %s to %s", src, dst)
    self._manager.reload()

  def latest_good_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def restore_latest(self, abstract_state: Any, config: dict,
                     shape_fields: Sequence[str], vocab: Any = None
                     ) -> tuple[Any, int | None, Any]:
    """Restores the newest readable checkpoint.

    Args:
      abstract_state: a ``TrainState`` of ``jax.ShapeDtypeStruct`` (with
        shardings) describing what to restore into.
      config: the requested config (dict), checked against the saved one.
      shape_fields: config keys that fix the model's shape.
      vocab: the requested vocabulary, checked against the saved one.

    Returns:
      ``(state, step, vocab)``, or ``(None, None, None)`` for an empty
      directory.

    Raises:
      ConfigMismatchError: the saved config differs in a shape field, or the
        saved vocabulary differs from ``vocab``.
      CheckpointError: checkpoints exist but none could be restored.
    """
    steps = self.steps()
    if not steps:
      return None, None, None

    def read(step):
      if not self.verify(step):
        logging.info("checkpoint at step %d has no digest (unverified)", step)
      saved_config = self._manager.restore(
          step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
      check_config(saved_config, config, shape_fields, self.directory)
      has = lambda name: os.path.isdir(os.path.join(self.directory, str(step), name))
      if vocab is not None and has("vocab"):
        # Before the state: a new vocabulary changes the params' shapes, and
        # the state's restore would fail as if the files were damaged.
        saved_vocab = self._manager.restore(
            step, args=ocp.args.Composite(vocab=ocp.args.JsonRestore()))["vocab"]
        if _jsonable(saved_vocab) != _jsonable(vocab):
          raise ConfigMismatchError(
              f"the checkpoints in {self.directory} were made with a different "
              f"vocabulary ({describe_vocab_change(saved_vocab, _jsonable(vocab))}): "
              "the data changed; train on the same data to resume, or use another "
              "--workdir to start afresh (the checkpoints are intact)")
      items = {"state": ocp.args.StandardRestore(abstract_state)}
      for name in ("vocab", "log_window"):
        if has(name):
          items[name] = ocp.args.JsonRestore()
      restored = dict(self._manager.restore(step, args=ocp.args.Composite(**items)))
      jax.block_until_ready(restored["state"])
      restored["config"] = saved_config
      return restored

    step, restored, failures = newest_readable(steps, read, self.directory)
    saved_vocab = restored.get("vocab")
    for bad_step in failures:
      self._set_aside(bad_step)
    self.saved_config = restored["config"]
    self.log_window = restored.get("log_window") or []
    return restored["state"], step, saved_vocab


def newest_readable(steps: Sequence[int], read: Callable[[int], Any],
                    directory: str) -> tuple[int, Any, list]:
  """The one restore path: tries ``read(step)`` from the newest step down.

  A step that raises is skipped with a warning naming it (a kill during a
  save, truncated files); :class:`ConfigMismatchError` is not damage and
  stops the walk. Returns ``(step, read(step), skipped steps)``.

  Raises:
    CheckpointError: none of ``steps`` could be read.
  """
  failures: list = []
  for step in reversed(list(steps)):
    try:
      return step, read(step), [s for s, _ in failures]
    except ConfigMismatchError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      failures.append((step, e))
      logging.warning("checkpoint at step %d in %s is damaged or unreadable "
                      "(%s: %s); falling back to an older one", step, directory,
                      type(e).__name__, (str(e).splitlines() or [""])[0][:300])
  raise CheckpointError(
      f"{directory} holds checkpoints at steps {sorted(steps)} but none could be "
      "restored (" + "; ".join(f"step {s}: {type(e).__name__}" for s, e in failures) +
      "). Refusing to start from scratch over them: move or delete the "
      "directory to start afresh.")


def check_config(saved: dict, requested: dict, shape_fields: Sequence[str],
                 where: str) -> None:
  # A field the saved config lacks came after the run was made: the run was
  # made with the field's behaviour from before it existed (its default).
  older = [k for k in shape_fields if k not in saved and k in requested]
  if older:
    logging.warning("the config saved in %s has no %s (made before the field "
                    "existed): assuming the requested %s", where, older,
                    [requested[k] for k in older])
  diffs = [(k, saved.get(k), requested.get(k)) for k in shape_fields if k not in older
           and _jsonable(saved.get(k)) != _jsonable(requested.get(k))]
  if diffs:
    text = ", ".join(f"{k}: saved {a!r}, requested {b!r}" for k, a, b in diffs)
    raise ConfigMismatchError(
        f"the checkpoints in {where} were made with a different model ({text}); "
        "use another --workdir or the saved config")


def load_latest(workdir: str, step: int | None = None) -> dict:
  """The newest readable checkpoint of a workdir as NumPy arrays (for
  sampling, evaluation, analysis). Falls back over damaged steps exactly as
  training does (:func:`newest_readable`), without moving them. With
  ``step``, that checkpoint only.

  Returns ``{"step": int, "state": pytree of np.ndarray, "config": dict,
  "vocab": dict or None}``.

  Raises:
    CheckpointError: no checkpoint, or none readable.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise CheckpointError(f"no checkpoint in {directory}")
  handlers = {"state": ocp.StandardCheckpointHandler(),
              "config": ocp.JsonCheckpointHandler(),
              "vocab": ocp.JsonCheckpointHandler(),
              "log_window": ocp.JsonCheckpointHandler()}
  with ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers=handlers) as manager:
    steps = sorted(manager.all_steps())
    if step is not None:
      if step not in steps:
        raise CheckpointError(f"no checkpoint at step {step} in {directory} "
                              f"(steps: {steps})")
      steps = [step]
    if not steps:
      raise CheckpointError(f"no checkpoint in {directory}")
    # Restore onto this process's first device, whatever mesh saved it.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def read(s):
      verify_step(directory, s)
      target = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          manager.item_metadata(s)["state"])
      items = {"state": ocp.args.StandardRestore(target),
               "config": ocp.args.JsonRestore()}
      if os.path.isdir(os.path.join(directory, str(s), "vocab")):
        items["vocab"] = ocp.args.JsonRestore()
      restored = manager.restore(s, args=ocp.args.Composite(**items))
      return {"state": jax.tree.map(np.asarray, restored["state"]),
              "config": restored["config"], "vocab": restored.get("vocab")}

    found, restored, _ = newest_readable(steps, read, directory)
  return {"step": found, **restored}
