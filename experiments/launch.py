"""What every experiment binary shares: its flags, distributed set-up, clean
errors.

``main.py`` of each experiment is one call of :func:`training_binary`
(``--workdir``, ``--config``, train, then the task's own evaluation), which
runs through :func:`run`. The flags for several processes or hosts live here:
``--coordinator_address``, ``--num_processes``, ``--process_id`` (leave
them unset on one machine, or on a cluster whose environment JAX detects).
"""

from __future__ import annotations

import ast
import logging as pylogging
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from rnn_zoo import xla_config

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0, for jax.distributed (several processes/hosts).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def _parse_flags(argv):
  """absl's parser, but a bad flag or config override is one line, not a
  traceback (ml_collections raises on an unknown ``--config.x``)."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, ValueError, TypeError) as e:
    text = str(e.args[0]) if e.args else str(e)
    if "Traceback (most recent call last)" in text:
      # A config file that raised: keep the flag and the exception's line.
      lines = [l for l in text.splitlines() if l.strip()]
      text = text.split("Traceback")[0] + lines[-1]
    while text[:1] in ("'", '"'):  # ml_collections passes a KeyError's repr
      try:
        text = str(ast.literal_eval(text))
      except (ValueError, SyntaxError):
        break
    message = " ".join(text.split()) or type(e).__name__
    if "Did you mean" in message or " " not in message:
      message = f"unknown config field {message}"
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class _QuietLibraries(pylogging.Filter):
  """Keeps orbax's per-save INFO chatter out of the progress log."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or "/orbax/" not in record.pathname


def training_binary(task: str, experiment_config, build: Callable, *, workdir_holds: str,
                    finish: Callable | None = None) -> Callable[[], None]:
  """Defines a training binary's ``--workdir`` and ``--config`` (default
  ``experiments/<task>/config.py``, presets described from
  ``experiment_config``) and returns its ``main()``.

  ``main()`` trains ``build(config)`` (a :class:`rnn_zoo.training.Workload`,
  or an object with one as ``.workload``) through
  :func:`rnn_zoo.training.train_and_evaluate`, then calls
  ``finish(config, workdir, built)`` (the task's decoding, scoring and
  report), all inside :func:`run`.
  """
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from experiments import common  # pylint: disable=g-import-not-at-top
  workdir = flags.DEFINE_string("workdir", None, workdir_holds, required=True)
  config_flag = config_flags.DEFINE_config_file(
      "config", f"experiments/{task}/config.py",
      common.describe_config(experiment_config), lock_config=True)

  def train():
    from rnn_zoo import training  # pylint: disable=g-import-not-at-top
    config = config_flag.value
    built = build(config)
    # The task's report runs inside the training unit: the workdir stays
    # locked and signals are watched until it is written.
    return training.train_and_evaluate(
        config, workdir.value, getattr(built, "workload", built),
        finish=None if finish is None else (lambda: finish(config, workdir.value, built)))

  return lambda: run(train)


def run(train: Callable[[], object]) -> None:
  """Parses flags, sets up devices/processes, and calls ``train()``.

  A user's mistake (:class:`rnn_zoo.UserError`: a bad flag, config value,
  workdir or file; a workdir another run holds; no readable checkpoint) ends
  the program with a one-line message and exit status 2; a non-finite loss
  with one line and status 1; SIGTERM/SIGINT, after the checkpoint is saved,
  with one line and 128 + the signal number. Anything else is a bug and
  keeps its traceback.
  """
  pylogging.getLogger("absl").addFilter(_QuietLibraries())

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _check_config_loaded()
    # Before the first JAX computation: the flags measured best for the
    # config's cell when it names one (rnn_zoo.xla_config.CELL_CPU_FLAGS).
    config = flags.FLAGS.config if "config" in flags.FLAGS else {}
    cell = config.get("cell")
    added = xla_config.use_recommended_cpu_flags(
        cell=cell if isinstance(cell, str) else None)
    logging.info("XLA flags added for cell %r: %s", cell, " ".join(added) or "(none)")
    logging.info("malloc keeps freed memory for reuse (xla_config.use_recommended_malloc): %s",
                 xla_config.use_recommended_malloc())
    from rnn_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
    from rnn_zoo.training import checkpoint, loop, preemption, sharding  # pylint: disable=g-import-not-at-top
    try:
      sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                      _PROCESS_ID.value)
      if cell in ("lstm", "gru"):
        from rnn_zoo import native  # pylint: disable=g-import-not-at-top
        logging.info("native CPU kernels (rnn_zoo.native): %s", native.status())
      if config.get("cudnn"):
        from rnn_zoo import cudnn  # pylint: disable=g-import-not-at-top
        logging.info("cuDNN (rnn_zoo.cudnn): %s", cudnn.status())
      import jax  # pylint: disable=g-import-not-at-top
      if config.get("compute_dtype") == "bfloat16" and jax.default_backend() == "cpu":
        logging.warning("config.compute_dtype=bfloat16 on the CPU: the cell runs on the "
                        "scan runner, not the float32 native kernels, and is slower "
                        "than float32 (docs/performance.md)")
      train()
    except (UserError, checkpoint.CheckpointError) as e:
      _exit(f"error: {e}", 2)
    except loop.NonFiniteError as e:
      _exit(f"error: {e}", 1)
    except preemption.Preempted as e:
      _exit(str(e), e.exit_code)

  app.run(main, flags_parser=_parse_flags)


def _check_config_loaded() -> None:
  """ml_collections reports a missing or broken --config file only when the
  config is first read, as a traceback: read it here and say it in a line."""
  if "config" not in flags.FLAGS:
    return
  try:
    flags.FLAGS.config.keys()  # pylint: disable=expression-not-assigned
  except OSError as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    reason = next((l for l in lines if l.startswith("[Errno")), lines[-1] if lines else "")
    path = flags.FLAGS["config"].config_filename if hasattr(
        flags.FLAGS["config"], "config_filename") else None
    _exit(f"error: --config could not be loaded"
          f"{f' from {path!r}' if path else ''}: {reason}", 2)


def _exit(message: str, code: int) -> None:
  logging.flush()
  print(" ".join(message.split()), file=sys.stderr, flush=True)
  sys.exit(code)
