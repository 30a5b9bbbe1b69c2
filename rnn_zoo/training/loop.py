"""``train_and_evaluate``: the one training loop every experiment uses.

In the style of the Flax examples: the train step is a plain function jitted
once with ``donate_argnums``; per-step keys are ``fold_in(key, step)``; the
batch at step s is a pure function of ``(config.seed, s)``, generated inside
jit straight into its shards; metrics stay on the device until a log step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_zoo import checks
from rnn_zoo.errors import UserError
from rnn_zoo.training import budget as budget_lib
from rnn_zoo.training import checkpoint as ckpt_lib
from rnn_zoo.training import metrics as metrics_lib
from rnn_zoo.training import optim
from rnn_zoo.training import preemption
from rnn_zoo.training import sharding as shard_lib
from rnn_zoo.training import workdir as workdir_lib
from rnn_zoo.training.state import TrainState

if TYPE_CHECKING:
  from ml_collections import ConfigDict

NONFINITE_POLICIES = ("stop", "skip")


class NonFiniteError(FloatingPointError):
  """The loss or the gradient became NaN/Inf."""


@dataclasses.dataclass(frozen=True)
class Workload:
  """What a task gives the loop: pure functions of keys and params.

  Attributes:
    init_params: ``key -> params``.
    loss_fn: ``(params, batch, key, train) -> (loss, metrics)``; ``metrics``
      a dict of scalars averaged over the log window. Workloads built on the
      runner also take ``hidden_probes=`` (see :mod:`rnn_zoo.gradflow`).
      Stateful workloads (``init_carry`` set) take ``carry=`` and return
      ``(loss, (metrics, new_carry))``.
    train_batch: ``(key, step) -> batch`` (jittable; leaves have a leading
      batch axis); ``key`` is ``fold_in(data_key, step)``.
    eval_batch: ``(key, i) -> batch`` for the i-th held-out batch.
    shape_fields: config fields that fix the model's shape (checked on resume).
    vocab: saved beside every checkpoint when not None.
    param_groups: optional ``params -> dict[name, subtree]`` for per-group
      gradient norms in the logs.
    diagnostics: the gradient-flow hook (:class:`rnn_zoo.gradflow.Diagnostics`:
      probe shapes, the recurrent layers) of a workload whose ``loss_fn``
      takes ``hidden_probes=``; None: no diagnostics.
    init_only_fields: config fields that change only ``init_params``'s result
      (e.g. a forget-gate bias): the grid may put runs that differ in them in
      one group (:mod:`rnn_zoo.training.grid`).
    init_carry: for stateful training, ``batch_size -> carry``: the model's
      recurrent state, kept in ``TrainState.carry`` (checkpointed, sharded
      like the batch) and passed from one train step to the next with the
      gradient stopped there (truncated BPTT across batches); evaluation
      carries its own state across its batches in order.
    eval_batches: evaluate on exactly this many batches (a whole held-out
      split) instead of ``config.eval_batches``.
    sample: ``(params, key) -> str``: text printed (and appended to
      ``samples.txt``) every ``config.sample_every`` steps.
    info: facts about the data (sizes, source) logged at the start.
    host_data: ``train_batch`` / ``eval_batch`` run on the host (``key`` is
      None) and return the global batch as NumPy arrays, a pure function of
      the step (e.g. a grain ``MapDataset`` indexed by it); the loop places
      each process's rows on its devices.
    valid_batch: ``(key, i) -> batch`` for the i-th validation batch: data
      kept apart from both training and ``eval_batch``, on which a grid
      (``train_group(..., validate=True)``) chooses hyperparameters such as
      the learning rate, so that the held-out result is never what chose
      them. None: the workload has none.
  """
  init_params: Callable[[jax.Array], Any]
  loss_fn: Callable[..., tuple[jax.Array, dict]]
  train_batch: Callable[[jax.Array, jax.Array], dict]
  eval_batch: Callable[[jax.Array, jax.Array], dict]
  shape_fields: Sequence[str]
  vocab: Any = None
  param_groups: Callable[[Any], dict] | None = None
  diagnostics: Any = None  # rnn_zoo.gradflow.Diagnostics
  init_only_fields: Sequence[str] = ()
  init_carry: Callable[[int], Any] | None = None
  eval_batches: int | None = None
  sample: Callable[[Any, jax.Array], str] | None = None
  info: dict | None = None
  host_data: bool = False
  valid_batch: Callable[[jax.Array, jax.Array], dict] | None = None


def _check_training_config(config, workload: Workload | None = None) -> None:
  """The training block's values (experiments/common.py); each error names
  the field and the value."""
  fields = ["batch_size", "num_steps", "log_every", "eval_every",
            "checkpoint_every", "keep_checkpoints"]
  if workload is None or workload.eval_batches is None:
    fields.append("eval_batches")
  for field in fields:
    checks.positive_int(f"config.{field}", config[field])
  checks.choice("config.optimizer", config.optimizer, optim.OPTIMIZERS)
  checks.choice("config.schedule", config.schedule, optim.SCHEDULES)
  checks.positive_number("config.learning_rate", config.learning_rate)
  checks.positive_number("config.orthogonal_lr_scale", config.get("orthogonal_lr_scale", 1.0))
  for field in ("clip_norm", "clip_value"):
    checks.number_at_least(f"config.{field}", config[field], 0)
  checks.int_at_least("config.warmup_steps", config.warmup_steps, 0)
  if workload is not None and workload.sample is not None:
    checks.int_at_least("config.sample_every", config.sample_every, 0, "0: never")
  checks.choice("config.nonfinite", config.nonfinite, NONFINITE_POLICIES)
  checks.number_at_least("config.time_budget_minutes", config.get("time_budget_minutes", 0), 0)


def carried_loss(workload: Workload) -> Callable[..., Any]:
  """``workload.loss_fn`` as ``(params, batch, key, train, carry) -> (loss,
  (metrics, carry))`` for every workload (the carry is None when stateless),
  so that training and evaluation have one path."""
  if workload.init_carry is not None:
    return lambda p, b, k, train, carry: workload.loss_fn(p, b, k, train, carry=carry)

  def loss(p, b, k, train, carry):
    value, aux = workload.loss_fn(p, b, k, train)
    return value, (aux, carry)
  return loss


EVAL_SEED = 0
"""Evaluation is deterministic, but a loss may still draw (hard attention's
sampled locations): every evaluation, of every run, draws from
``jax.random.key(EVAL_SEED)``, so that evaluations compare across steps,
runs and resumptions."""


def eval_key() -> jax.Array:
  """The key every evaluation's loss gets (see :data:`EVAL_SEED`)."""
  return jax.random.key(EVAL_SEED)


def make_eval_step(workload: Workload) -> Callable[..., Any]:
  """``(params, batch, carry=None) -> (loss, (metrics, carry))``: the held-out
  loss, as the loop jits it and the grid vmaps it."""
  loss_fn = carried_loss(workload)

  def eval_step(params, batch, carry=None):
    return loss_fn(params, batch, eval_key(), False, carry)

  return eval_step


def initial_state(workload: Workload, optimizer: optax.GradientTransformation,
                  config: ConfigDict, k_init: jax.Array, k_train: jax.Array) -> TrainState:
  """The train state at step 0 (traceable: jit it with ``out_shardings``)."""
  params = workload.init_params(k_init)
  carry = (workload.init_carry(config.batch_size)
           if workload.init_carry is not None else None)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params),
                    key=jax.random.key_data(k_train),
                    nonfinite_steps=jnp.zeros((), jnp.int32), carry=carry)


def make_train_step(workload: Workload, optimizer: optax.GradientTransformation,
                    config: ConfigDict) -> Callable[..., Any]:
  """``(state, batch) -> (state, metrics)``: one update, as the loop jits it
  (with donation) and the grid vmaps it over runs. ``optimizer`` is
  :func:`rnn_zoo.training.optim.make_optimizer`'s (or the grid's, whose
  hyperparameters are state)."""
  skip = config.nonfinite == "skip"
  clip_norm, clip_value = config.clip_norm, config.clip_value
  schedule = optim.make_schedule(config)
  loss_fn = carried_loss(workload)

  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    # The carry enters as a constant: the gradient stops at the boundary.
    (loss, (aux, carry)), grads = jax.value_and_grad(
        lambda p: loss_fn(p, batch, key, True, state.carry), has_aux=True)(state.params)
    stats = {}
    if workload.param_groups is not None:
      for name, sub in workload.param_groups(grads).items():
        stats[f"grad_norm/{name}"] = optax.tree.norm(sub)
    clip_stats = optim.clip_stats(grads, clip_norm=clip_norm, clip_value=clip_value)
    stats.update(clip_stats)
    finite = jnp.isfinite(loss) & jnp.isfinite(clip_stats["grad_norm"])
    # The optimizer chain clips (optim.make_optimizer).
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if skip:
      keep = lambda new, old: jax.tree.map(
          lambda n, o: jnp.where(finite, n, o), new, old)
      params = keep(params, state.params)
      opt_state = keep(opt_state, state.opt_state)
    # A non-finite carry would poison every later batch: reset it.
    carry = jax.tree.map(lambda c: jnp.where(finite, c, jnp.zeros_like(c)), carry)
    new_state = dataclasses.replace(
        state, step=state.step + 1, params=params, opt_state=opt_state, carry=carry,
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32))
    metrics = {"loss": loss, **aux, **stats, "finite": finite.astype(jnp.float32),
               "learning_rate": optim.applied_learning_rate(state.opt_state, schedule)}
    return new_state, metrics

  return train_step


def _all_finite(tree) -> bool:
  return bool(jax.tree.reduce(
      lambda a, b: a & b,
      jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), tree), jnp.bool_(True)))


def train_and_evaluate(config: ConfigDict, workdir: str, workload: Workload, *,
                       finish: Callable[[], Any] | None = None) -> dict:
  """Trains ``workload`` as ``config`` says, checkpointing into ``workdir``.

  Restarting with the same workdir resumes from the latest good checkpoint
  and ends bit-identical to an uninterrupted run.

  ``finish``: the task's own final work (decoding, scoring, the report),
  called after the final evaluation inside the same unit: the workdir stays
  locked and SIGTERM/SIGINT are watched until it returns. A signal that
  arrives during the last step or the final evaluation stops the run before
  ``finish`` (:class:`preemption.Preempted`; the final checkpoint is saved,
  so rerunning the command goes straight to ``finish``); one that arrives
  during ``finish`` lets it complete (a second Ctrl-C stops at once) and is
  logged.

  Returns:
    The final evaluation metrics (and ``step``).

  Raises:
    ValueError: a bad config value (naming the field).
    NonFiniteError: with ``config.nonfinite="stop"``, a NaN/Inf loss or
      gradient (naming the step and the last good checkpoint).
    CheckpointError / ConfigMismatchError: see :mod:`checkpoint`.
  """
  _check_training_config(config, workload)
  workdir = workdir_lib.check_workdir(workdir)
  with workdir_lib.WorkdirLock(workdir), preemption.PreemptionWatcher() as watcher:
    result = _train_and_evaluate(config, workdir, workload, watcher)
    if finish is None:
      return result
    if watcher.should_stop(result["step"]):
      name = signal.Signals(watcher.signum).name
      raise preemption.Preempted(
          f"received {name} at the end of training (step {result['step']}, checkpoint "
          "saved): stopped before the final report; rerunning the command writes it",
          signum=watcher.signum, step=result["step"])
    finish()
    if watcher.signum is not None:
      logging.warning("received %s during the final report; it was completed",
                      signal.Signals(watcher.signum).name)
    return result


def _restore_or_init(config, workdir, workload, optimizer, k_init, k_train, mesh):
  """The train state (restored from the latest good checkpoint, else fresh),
  the step it is at, the checkpointer and the state's shardings."""
  def init_state():
    return initial_state(workload, optimizer, config, k_init, k_train)

  shapes = jax.eval_shape(init_state)
  shardings = shard_lib.state_shardings(shapes, mesh)
  abstract = jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes, shardings)
  checkpointer = ckpt_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), save_every=config.checkpoint_every,
      keep=config.keep_checkpoints, async_save=config.async_checkpoint)
  state, restored_step, _ = checkpointer.restore_latest(
      abstract, config.to_dict(), workload.shape_fields, vocab=workload.vocab)
  if workload.info and jax.process_index() == 0:
    logging.info("data: %s", ", ".join(f"{k} {v}" for k, v in workload.info.items()))
  if state is None:
    logging.info("starting from scratch in %s", workdir)
    return jax.jit(init_state, out_shardings=shardings)(), 0, checkpointer, shardings
  start = int(restored_step)
  logging.info("resumed from the checkpoint at step %d in %s", start, workdir)
  saved_steps = (checkpointer.saved_config or {}).get("num_steps")
  if saved_steps is not None and saved_steps != config.num_steps:
    logging.warning(
        "config.num_steps changed on resume: the checkpoints were made with "
        "num_steps=%s, this run asks for num_steps=%s; schedules that depend "
        "on it (cosine) change from step %d on", saved_steps, config.num_steps,
        start)
  return state, start, checkpointer, shardings


def _batch_fns(workload, k_data, k_eval, data_sharding):
  """``(step -> train batch, i -> held-out batch)``, placed on the mesh."""
  if workload.host_data:
    # Read on the host (grain, files): each process places its own rows.
    return (lambda step: shard_lib.place_host_batch(
                workload.train_batch(None, step), data_sharding),
            lambda i: shard_lib.place_host_batch(
                workload.eval_batch(None, i), data_sharding))
  return (jax.jit(lambda step: workload.train_batch(jax.random.fold_in(k_data, step), step),
                  out_shardings=data_sharding),
          jax.jit(lambda i: workload.eval_batch(jax.random.fold_in(k_eval, i), i),
                  out_shardings=data_sharding))


@jax.jit
def _stack_rows(rows):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *rows)


class _LogWindow:
  """The (step, metrics) of the train steps not yet in a log row. A
  checkpoint made on a signal between two log steps carries them over to the
  resumed run (float32 on the device, restored as float32: their means are
  the ones an uninterrupted run computes)."""

  def __init__(self, config, checkpointer, writer, progress):
    self.config, self.checkpointer = config, checkpointer
    self.writer, self.progress = writer, progress
    self.pending = [(int(st), {k: np.float32(v) for k, v in m.items()})
                    for st, m in checkpointer.log_window]

  def add(self, step, metrics):
    self.pending.append((step, metrics))

  def fetched(self):
    """The window as host floats (what a checkpoint on a signal keeps)."""
    return [(st, {k: float(v) for k, v in jax.device_get(m).items()})
            for st, m in self.pending]

  def flush(self, step):
    """Fetches the window's metrics (one sync), checks them, logs their mean."""
    if not self.pending:
      return
    # Stacked on the device first, {metric: [one per step]}: one transfer
    # per metric, not per step and metric.
    rows = jax.device_get(_stack_rows([m for _, m in self.pending]))
    steps = [s for s, _ in self.pending]
    self.pending.clear()
    if self.config.nonfinite == "stop":
      for i, s in enumerate(steps):
        if not rows["finite"][i]:
          self._stop(s, {k: v[i] for k, v in rows.items()})
    mean = {k: float(np.mean(v)) for k, v in rows.items() if k not in ("finite", "clipped")}
    mean["clipped_fraction"] = float(np.mean(rows["clipped"]))
    mean["grad_norm_max"] = float(np.max(rows["grad_norm"]))
    mean["nonfinite_steps"] = float(len(steps) - np.sum(rows["finite"]))
    self.writer.write(step, mean)
    self.writer.write_trace(steps, {"grad_norm": rows["grad_norm"], "loss": rows["loss"]})
    self.progress.report(step, {k: mean[k] for k in ("loss", "grad_norm",
                                                      "clipped_fraction")})

  def _stop(self, step, m):
    self.checkpointer.wait()  # a save still in flight is good: let it land
    good = self.checkpointer.latest_good_step()
    restart = (f"last good checkpoint: step {good} in {self.checkpointer.directory}. "
               "Restarting resumes from it" if good is not None else
               "no checkpoint yet: restarting starts from the beginning")
    raise NonFiniteError(
        f"non-finite loss or gradient at step {step} (loss={float(m['loss'])}, "
        f"grad_norm={float(m['grad_norm'])}); {restart}; set config.nonfinite='skip' "
        "to skip such updates instead.")


def _make_evaluate(workload, config, eval_batch_fn, eval_carry):
  """``(params, step, writer=None) -> metrics``: the held-out loss and
  metrics, averaged over the evaluation batches in order (a stateful
  model's carry flowing across them), written by ``writer`` when given and
  logged."""
  eval_step = jax.jit(make_eval_step(workload))
  num_eval = workload.eval_batches or config.eval_batches

  def evaluate(params, step, writer=None, log=True):
    sums = {}
    carry = eval_carry()
    for i in range(num_eval):
      loss, (aux, carry) = eval_step(params, eval_batch_fn(i), carry)
      for k, v in {"loss": loss, **aux}.items():
        sums[k] = sums.get(k, 0.0) + v
    result = {k: float(v) / num_eval for k, v in sums.items()}
    if writer is not None:
      writer.write(step, result, split="eval")
    if log and jax.process_index() == 0:
      logging.info("eval at step %d: %s", step,
                   " ".join(f"{k} {v:.4g}" for k, v in result.items()))
    return result

  return evaluate


def _make_show_sample(workload, workdir, k_sample):
  def show_sample(params, step):
    text = workload.sample(params, jax.random.fold_in(k_sample, step))
    if jax.process_index() == 0:
      logging.info("sample at step %d:\n%s", step, text)
      with open(os.path.join(workdir, "samples.txt"), "a", encoding="utf-8") as f:
        f.write(f"===== step {step} =====\n{text}\n")
  return show_sample


def _train_and_evaluate(config, workdir: str, workload: Workload,
                        watcher: preemption.PreemptionWatcher) -> dict:
  mesh = shard_lib.make_mesh()
  shard_lib.check_batch_size(config.batch_size, mesh)
  data_sharding = shard_lib.batch_sharding(mesh)

  root = jax.random.key(config.seed)
  k_init, k_train, k_data, k_eval = jax.random.split(root, 4)
  batch_fn, eval_batch_fn = _batch_fns(workload, k_data, k_eval, data_sharding)
  # The carry is sharded along ``data`` like the batch (shard_lib.state_shardings).
  init_carry = lambda: (workload.init_carry(config.batch_size)
                        if workload.init_carry is not None else None)
  eval_carry = jax.jit(init_carry, out_shardings=jax.tree.map(
      lambda _: data_sharding, jax.eval_shape(init_carry)))
  evaluate = _make_evaluate(workload, config, eval_batch_fn, eval_carry)
  if config.get("time_budget_minutes", 0):
    _apply_time_budget(config, workdir, workload, mesh, batch_fn, evaluate,
                       (k_init, k_train))
  config_dict = config.to_dict()
  optimizer = optim.make_optimizer(config)
  state, start, checkpointer, shardings = _restore_or_init(
      config, workdir, workload, optimizer, k_init, k_train, mesh)
  writer = metrics_lib.MetricWriter(workdir, resume_step=start)
  progress = metrics_lib.Progress(start, config.num_steps)
  train_step = jax.jit(make_train_step(workload, optimizer, config),
                       donate_argnums=0)
  sample_every = config.sample_every if workload.sample else 0
  show_sample = _make_show_sample(workload, workdir, jax.random.fold_in(root, 1))
  window = _LogWindow(config, checkpointer, writer, progress)

  eval_result = {}
  try:
    for step in range(start, config.num_steps):
      state, m = train_step(state, batch_fn(step))
      s = step + 1
      window.add(s, m)
      last = s == config.num_steps
      saving = last or s % config.checkpoint_every == 0
      # A signal is acted on after the step's logging, evaluation, sample and
      # checkpoint (the resumed run must not miss this step's rows).
      stop = watcher.should_stop(s) and not last
      if saving or last or s % config.log_every == 0:
        window.flush(s)
      if last or s % config.eval_every == 0:
        eval_result = evaluate(state.params, s, writer)
      if sample_every and (last or s % sample_every == 0):
        show_sample(state.params, s)
      if saving:
        if not _all_finite(state.params):
          raise NonFiniteError(
              f"params are not finite at step {s}; not checkpointing them "
              f"(last good checkpoint: {checkpointer.latest_good_step()})")
        checkpointer.save(s, state, config_dict, workload.vocab, force=last or stop)
      if stop:
        _save_and_stop(s, state, checkpointer, config_dict, workload, watcher,
                       window.fetched(), saved=saving)
    if start >= config.num_steps:
      # Already finished: report the final evaluation, but do not log it a
      # second time (metrics.jsonl reads like one uninterrupted run).
      logging.info("the run in %s already reached num_steps=%d", workdir,
                   config.num_steps)
      eval_result = evaluate(state.params, start)
  finally:
    checkpointer.close()
    writer.close()
    progress.close()
  if jax.process_index() == 0:
    print(f"done at step {int(state.step)}; results in {workdir}:\n"
          f"  checkpoints  {checkpointer.directory}\n"
          f"  metrics      {writer.path}\n"
          f"  TensorBoard  tensorboard --logdir {os.path.join(workdir, 'tensorboard')}",
          flush=True)
  return {"step": int(state.step), **eval_result}


def _has_checkpoints(workdir: str) -> bool:
  folder = os.path.join(workdir, "checkpoints")
  return os.path.isdir(folder) and any(n.isdigit() for n in os.listdir(folder))


def _from_process_0(value: int) -> int:
  """Process 0's ``value`` on every process (what every process must agree
  on: a step count, how many probe steps to run)."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def _apply_time_budget(config, workdir, workload, mesh, batch_fn, evaluate, keys):
  """Sets ``config.num_steps`` from ``config.time_budget_minutes``: the
  plan an earlier start of this run saved, else one made now by timing what
  the loop will do on a throwaway state (:func:`_measure_plan`), saved before
  training starts. Every process reads the workdir (shared, as the
  checkpoints are) and takes process 0's step count."""
  minutes = float(config.time_budget_minutes)
  plan = budget_lib.load_plan(workdir)
  if plan is None and _has_checkpoints(workdir):
    raise UserError(
        f"config.time_budget_minutes={minutes:g}, but the run in {workdir!r} was started "
        "without one (no budget.json beside its checkpoints): resume it with "
        "config.time_budget_minutes=0 and its num_steps, or use another --workdir")
  measured = plan is None
  if measured:
    plan = _measure_plan(config, workdir, workload, mesh, batch_fn, evaluate, keys,
                         minutes)
  elif plan["time_budget_minutes"] != minutes:
    logging.warning("config.time_budget_minutes=%g, but this run was planned for %g "
                    "minutes: it keeps its plan of %d steps (delete %s to plan again)",
                    minutes, plan["time_budget_minutes"], plan["num_steps"],
                    os.path.join(workdir, budget_lib.PLAN_FILE))
  steps = _from_process_0(plan["num_steps"])
  if steps < 1:
    raise UserError(f"config.time_budget_minutes={minutes:g} leaves no time to train: "
                    f"{budget_lib.describe(plan)}")
  if jax.process_index() == 0:
    if measured:
      budget_lib.save_plan(workdir, plan)
    logging.info("%s", budget_lib.describe(plan))
  config.num_steps = steps


class _NoProgress:
  def report(self, step, scalars):
    pass


def _timed(fn, repeat: int = 1) -> float:
  """Seconds of one call of ``fn`` (after a first, untimed call that
  compiles), the least of ``repeat``."""
  fn()
  best = float("inf")
  for _ in range(repeat):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def _measure_plan(config, workdir, workload, mesh, batch_fn, evaluate, keys, minutes):
  """Times, on a state that is thrown away, what the loop will do: the train
  step (compiled for the cap ``config.num_steps``), an evaluation, a
  sample, a checkpoint save and a metrics row; then plans."""
  optimizer = optim.make_optimizer(config)
  init = lambda: initial_state(workload, optimizer, config, *keys)
  shardings = shard_lib.state_shardings(jax.eval_shape(init), mesh)
  state = jax.jit(init, out_shardings=shardings)()
  step = jax.jit(make_train_step(workload, optimizer, config), donate_argnums=0)
  t0 = time.perf_counter()
  state, m = step(state, batch_fn(0))
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  # Dispatched as the loop does (one sync per chunk of 5 steps, not per
  # step), for about 3 s: as many chunks as the first one says fit, the same
  # number on every process.
  n = 0

  def chunk():
    nonlocal state, m, n
    for _ in range(5):
      state, m = step(state, batch_fn(n + 1))
      n += 1
    jax.block_until_ready(m)
  t0 = time.perf_counter()
  chunk()
  chunk_s = time.perf_counter() - t0
  chunks = _from_process_0(min(199, max(2, math.ceil(3.0 / max(chunk_s, 1e-6)))))
  t0 = time.perf_counter()
  for _ in range(chunks):
    chunk()
  step_s = (time.perf_counter() - t0) / (5 * chunks)
  costs = {"eval": (_timed(lambda: evaluate(state.params, 0, log=False)), config.eval_every)}
  if workload.sample is not None and config.sample_every:
    key = jax.random.key(0)
    costs["sample"] = (_timed(lambda: workload.sample(state.params, key)), config.sample_every)
  probe_dir = os.path.join(workdir, ".budget-probe")
  if jax.process_index() == 0:  # what a start killed while planning left
    shutil.rmtree(probe_dir, ignore_errors=True)
  checkpointer = ckpt_lib.Checkpointer(
      os.path.join(probe_dir, "checkpoints"), save_every=1, keep=1,
      async_save=config.async_checkpoint)
  writer = metrics_lib.MetricWriter(probe_dir)
  try:
    saves = iter(range(1, 100))

    def save():  # what the loop does at a checkpoint step
      _all_finite(state.params)
      checkpointer.save(next(saves), state, config.to_dict(), workload.vocab, force=True)
      checkpointer.wait()
    costs["checkpoint"] = (_timed(save, repeat=2), config.checkpoint_every)
    window = _LogWindow(config, checkpointer, writer, _NoProgress())
    # A row fetches every step's metrics: distinct arrays (a fetched array
    # keeps its host copy, so fetching one twice would be free).
    fresh = jax.jit(lambda t: jax.tree.map(jnp.copy, t))
    log_s = float("inf")
    for _ in range(2):
      rows = [fresh(m) for _ in range(config.log_every)]
      jax.block_until_ready(rows)
      t0 = time.perf_counter()
      for i, row in enumerate(rows):
        window.add(i + 1, row)
      window.flush(config.log_every)
      log_s = min(log_s, time.perf_counter() - t0)
    costs["log"] = (log_s, config.log_every)
  finally:
    checkpointer.close()
    writer.close()
    if jax.process_index() == 0:
      shutil.rmtree(probe_dir, ignore_errors=True)
  del state
  elapsed = budget_lib.process_elapsed()
  steps = budget_lib.plan_steps(
      budget_s=60 * minutes, elapsed_s=elapsed, compile_s=compile_s, step_s=step_s,
      periodic=costs, cap=config.num_steps)
  return budget_lib.new_plan(
      minutes=minutes, num_steps=steps, cap=config.num_steps, step_s=step_s,
      periodic=costs, compile_s=compile_s, elapsed_s=elapsed, probe_steps=n,
      device=jax.devices()[0].device_kind)


def _save_and_stop(step, state, checkpointer, config_dict, workload, watcher,
                   log_window, saved=False):
  """On a signal: a checkpoint at ``step`` (unless the step ``saved`` one),
  waited for, then :class:`Preempted`."""
  name = signal.Signals(watcher.signum).name
  if not saved:
    if not _all_finite(state.params):
      raise NonFiniteError(f"received {name} at step {step} but the params are not "
                           f"finite; not checkpointing them (last good checkpoint: "
                           f"{checkpointer.latest_good_step()})")
    checkpointer.save(step, state, config_dict, workload.vocab, force=True,
                      log_window=log_window)
  checkpointer.wait()
  raise preemption.Preempted(
      f"stopped by {name} after step {step}; checkpoint saved in "
      f"{checkpointer.directory}; run the same command again to resume "
      f"from step {step}", signum=watcher.signum, step=step)
