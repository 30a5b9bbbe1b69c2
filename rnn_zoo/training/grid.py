"""Many small training runs as one compiled program (a grid of runs).

A gradient-flow benchmark trains dozens of small models (cells × seeds ×
learning rates × init variants) that share their shapes. One at a time
through :func:`~rnn_zoo.training.train_and_evaluate` each step of each run
is a separate dispatch, and small models are bound by that overhead, not by
arithmetic. :func:`train_group` instead stacks the runs' params and optimizer
states along a leading ``runs`` axis, ``jax.vmap``\\s one train step over
them and ``lax.scan``\\s over ``steps_per_call`` steps inside one jit, with
the metrics gathered on the device. With several devices (or processes) the
``runs`` axis is sharded over them.

Each run computes what ``train_and_evaluate`` computes for its config (the
same keys, batches, optimizer and evaluation), so the results match the same
runs made one at a time to float tolerance (``tests/training/test_grid.py``).

Runs of one group may differ only in :data:`VARYING_FIELDS` (the seed, the
learning rate, the clipping threshold) and in the fields the workload declares
init-only (``Workload.init_only_fields``, e.g. a forget-gate bias); every
other config field must agree, and :func:`group_configs` sorts a list of
configs into such groups.

Example::

  from experiments.long_range import config as lr_config, workload
  from rnn_zoo.training import grid
  configs = []
  for seed in range(3):
    c = lr_config.get_config("smoke"); c.seed = seed; configs.append(c)
  results = grid.train_group(configs, workload.long_range)
  results[0]["eval"][-1]   # (step, {"loss": ..., ...}) of seed 0
"""

from __future__ import annotations

import functools
import json
import math
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rnn_zoo import checks
from rnn_zoo import gradflow
from rnn_zoo.errors import UserError
from rnn_zoo.training import optim
from rnn_zoo.training import loop
from rnn_zoo.training.loop import Workload
from rnn_zoo.training.state import TrainState

if TYPE_CHECKING:
  from ml_collections import ConfigDict

# Config fields that may differ between the runs of one group whatever the
# workload: the seed and the optimizer's hyperparameters, never a shape or the
# function a step computes. A workload adds its init-only fields.
VARYING_FIELDS = ("seed", "learning_rate", "clip_norm")


def group_key(config: ConfigDict, init_only_fields: Sequence[str] = ()) -> str:
  """The config without :data:`VARYING_FIELDS` and ``init_only_fields``:
  runs with equal keys can share one compiled program."""
  skip = set(VARYING_FIELDS) | set(init_only_fields)
  d = {k: v for k, v in config.to_dict().items() if k not in skip}
  return json.dumps(d, sort_keys=True, default=str)


def group_configs(configs: Sequence, init_only_fields: Sequence[str] = ()
                  ) -> list[list[int]]:
  """Indices of ``configs`` grouped by :func:`group_key`, in first-seen order
  (``init_only_fields``: the workload's ``Workload.init_only_fields``)."""
  groups: dict[str, list[int]] = {}
  for i, c in enumerate(configs):
    groups.setdefault(group_key(c, init_only_fields), []).append(i)
  return list(groups.values())


def _check_group(configs: Sequence, init_only_fields: Sequence[str]) -> None:
  keys = {group_key(c, init_only_fields) for c in configs}
  if len(keys) > 1:
    a, b = (json.loads(k) for k in list(keys)[:2])
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    raise UserError(
        f"configs of one group may differ only in "
        f"{list(VARYING_FIELDS) + list(init_only_fields)}; they "
        f"also differ in {diff} (use grid.group_configs to split them)")


def _check_workload(w: Workload, configs: Sequence, diagnose_every: int,
                    validate: bool = False) -> None:
  """The group's configs against the workload's init-only fields, and what
  the grid needs of the workload."""
  _check_group(configs, w.init_only_fields)
  if w.init_carry is not None or w.host_data:
    raise UserError("train_group supports stateless workloads whose batches are "
                    "generated inside jit (init_carry None, host_data False); "
                    "use train_and_evaluate for this one")
  if diagnose_every and w.diagnostics is None:
    raise UserError("diagnose_every needs a workload with diagnostics "
                    "(rnn_zoo.gradflow.Diagnostics)")
  if validate and w.valid_batch is None:
    raise UserError("validate=True needs a workload with valid_batch (data kept "
                    "apart from training and evaluation), got none")


def _check_training_fields(configs: Sequence) -> None:
  c = configs[0]
  if c.schedule != "constant" or c.warmup_steps:
    raise UserError(
        f"train_group supports config.schedule='constant' without warm-up, got "
        f"schedule={c.schedule!r}, warmup_steps={c.warmup_steps}")
  for field in ("batch_size", "num_steps", "eval_every", "eval_batches"):
    checks.positive_int(f"config.{field}", c[field])
  if c.get("time_budget_minutes", 0):
    raise UserError(f"train_group trains config.num_steps steps; config.time_budget_minutes="
                    f"{c.time_budget_minutes} is for one run (rnn_zoo.training.train_and_evaluate)")
  for cfg in configs:
    checks.positive_number("config.learning_rate", cfg.learning_rate)
    checks.number_at_least("config.clip_norm", cfg.clip_norm, 0)


def make_optimizer(config: ConfigDict, learning_rate: float | None = None,
                   max_norm: float | None = None) -> optax.GradientTransformation:
  """``optim.make_optimizer(config)`` with the learning rate and the global
  norm threshold as state (``optax.inject_hyperparams``), so that they can
  differ between vmapped runs (pass them to override the config's; they
  may be traced). ``clip_norm`` 0 (off) becomes an infinite threshold, which
  leaves every gradient unchanged."""
  if learning_rate is None:
    learning_rate = config.learning_rate
  if max_norm is None:
    max_norm = config.clip_norm if config.clip_norm else math.inf

  def build(learning_rate, max_norm):
    parts = [optax.clip(config.clip_value)] if config.clip_value else []
    parts.append(optax.clip_by_global_norm(max_norm))
    return optax.chain(*parts, optim.base_optimizer(config, learning_rate))
  return optax.inject_hyperparams(build)(learning_rate=learning_rate,
                                         max_norm=max_norm)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _fetch(tree):
  """Host copies of (possibly sharded, possibly multi-process) arrays."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def _initial_runs(padded, workloads, c0, shard):
  """Every run's params, optimizer state and keys, stacked along the runs
  axis and placed on ``shard``: one compiled init per init variant (the
  workload's init-only fields)."""
  def init_one(wl, seed, lr, max_norm):
    k_init, k_train, k_data, k_eval = jax.random.split(jax.random.key(seed), 4)
    params = wl.init_params(k_init)
    opt = make_optimizer(c0, learning_rate=lr, max_norm=max_norm)
    return {"params": params, "opt_state": opt.init(params),
            "k_train": jax.random.key_data(k_train),
            "k_data": jax.random.key_data(k_data),
            "k_eval": jax.random.key_data(k_eval)}

  inits, runs = {}, []
  for c, wl in zip(padded, workloads):
    variant = json.dumps({k: c.get(k) for k in wl.init_only_fields}, default=str)
    if variant not in inits:
      inits[variant] = jax.jit(functools.partial(init_one, wl))
    runs.append(inits[variant](c.seed, c.learning_rate,
                               c.clip_norm if c.clip_norm else math.inf))
  shapes = {jax.tree.structure(r) for r in runs}
  leaf_shapes = {tuple((x.shape, x.dtype) for x in jax.tree.leaves(r)) for r in runs}
  if len(shapes) > 1 or len(leaf_shapes) > 1:
    raise UserError("the runs of a group must have params of the same shapes "
                    "(a field the workload calls init-only changed the model)")
  return jax.device_put(_stack(runs), shard)


# The validation batches' key: this stream of each run's evaluation key (the
# eval batches take streams 0 .. eval_batches-1).
VALID_STREAM = 2**31 - 1


def _make_chunk(w, optimizer, c0, diagnose_every, validate=False):
  """``chunk(state, start, do_diag, do_eval, k)``: one dispatch of the group:
  the loop's train and eval steps (and the diagnostics) vmapped over the
  runs."""
  # The loop's own train and eval steps, vmapped over the runs.
  train_step = loop.make_train_step(w, optimizer, c0)
  eval_step = loop.make_eval_step(w)

  def step_one(run, step):
    batch = w.train_batch(jax.random.fold_in(jax.random.wrap_key_data(run["k_data"]), step), step)
    state = TrainState(step=step, params=run["params"], opt_state=run["opt_state"],
                       key=run["k_train"], nonfinite_steps=jnp.zeros((), jnp.int32),
                       carry=None)
    state, metrics = train_step(state, batch)
    return ({**run, "params": state.params, "opt_state": state.opt_state},
            (metrics["loss"], metrics["grad_norm"]))

  num_eval = c0.eval_batches

  def mean_metrics(run, batch_fn, key):
    def one(i):
      loss, (aux, _) = eval_step(run["params"], batch_fn(jax.random.fold_in(key, i), i))
      return {"loss": loss, **aux}
    per = jax.lax.map(one, jnp.arange(num_eval))
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), per)

  def eval_one(run):
    k_eval = jax.random.wrap_key_data(run["k_eval"])
    out = mean_metrics(run, w.eval_batch, k_eval)
    if validate:  # the same count of batches, from the validation data
      valid = mean_metrics(run, w.valid_batch, jax.random.fold_in(k_eval, VALID_STREAM))
      out.update({f"valid_{m}": v for m, v in valid.items()})
    return out

  def diag_one(run):
    k_eval = jax.random.wrap_key_data(run["k_eval"])
    batch = w.eval_batch(jax.random.fold_in(k_eval, 0), 0)
    probes = tuple(jnp.zeros(s) for s in w.diagnostics.hidden_shapes(batch))
    norms = gradflow.hidden_grad_norms(
        lambda pr: w.loss_fn(run["params"], batch, loop.eval_key(), False,
                             hidden_probes=pr)[0], probes)
    horizon = gradflow.steps_in_the_past(norms[-1], 1e-2)
    return norms, horizon

  def skipped(fn):
    """Zeros shaped like ``fn``'s result: the branch of a ``lax.cond`` not
    taken."""
    return lambda st: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                                   jax.eval_shape(fn, st))

  def chunk(state, start, do_diag, do_eval, k):
    """One dispatch: the diagnostics on the state it starts from (when
    asked), k train steps, the evaluation of the state it ends with (when
    asked). One program for all three, so a group compiles once."""
    diag = None
    if diagnose_every:
      diag_all = jax.vmap(diag_one)
      diag = jax.lax.cond(do_diag, diag_all, skipped(diag_all), state)
    def body(st, s):
      return jax.vmap(step_one, in_axes=(0, None))(st, s)
    state, metrics = jax.lax.scan(body, state, start + jnp.arange(k))
    eval_all = jax.vmap(eval_one)
    ev = jax.lax.cond(do_eval, eval_all, skipped(eval_all), state)
    return state, metrics, ev, diag

  return chunk


def train_group(configs: Sequence, make_workload: Callable[[Any], Workload], *,
                steps_per_call: int | None = None, diagnose_every: int = 0,
                mesh: Mesh | None = None, keep_params: bool = False,
                on_eval: Callable[[int, list[dict]], bool | None] | None = None,
                validate: bool = False) -> list[dict]:
  """Trains one run per config, all at once (see the module docstring).

  Args:
    configs: long-range style configs (the loop's training fields) that
      agree on everything but :data:`VARYING_FIELDS` and the workload's
      ``init_only_fields``.
    make_workload: ``config -> Workload`` (e.g.
      ``experiments.long_range.workload.long_range``); only each run's
      ``init_params`` is taken from its own workload, the rest from the first.
    steps_per_call: train steps per dispatch (a ``lax.scan`` inside one jit);
      default ``config.eval_every``. Evaluation happens every ``eval_every``
      steps and at the end, as in ``train_and_evaluate``.
    diagnose_every: at step 0 and every this many steps before the end (a
      multiple of ``eval_every``; 0: never), ``‖dL/dh_t‖`` for every t and
      layer on the first held-out batch (``gradflow.hidden_grad_norms``;
      needs ``workload.diagnostics``) and its memory horizon
      (``gradflow.steps_in_the_past`` at 1%).
    mesh: a 1-D mesh whose axis shards the runs (default: every device of
      every process). Runs are padded to a multiple of its size.
    keep_params: also return each run's final params (host arrays).
    on_eval: called as ``on_eval(step, results_so_far)`` after each
      evaluation (progress reports); when it returns True the group stops
      there (early stopping, e.g. once every run has solved its task), and
      each result's ``steps`` says how many steps were trained.
    validate: also evaluate on the workload's ``valid_batch`` data at every
      evaluation (the same number of batches), as ``valid_<metric>`` beside
      each held-out metric: what a sweep chooses by.

  A run whose loss or gradient turns NaN/Inf keeps training (its count is
  ``nonfinite_steps``); the other runs are not affected.

  Returns:
    One dict per config, in order: ``train`` ``[(step, loss, grad_norm)]``
    per step (grad norm before clipping), ``eval`` ``[(step, metrics)]``,
    ``final`` (the last eval metrics), ``nonfinite_steps``, and with
    diagnostics ``diagnostics`` ``[(step, [per-layer ‖dL/dh_t‖ lists],
    horizon)]``, and ``steps`` (the steps trained: ``config.num_steps``
    unless ``on_eval`` stopped the group early).
  """
  configs = list(configs)
  if not configs:
    raise UserError("train_group needs at least one config, got none")
  _check_training_fields(configs)
  c0 = configs[0]
  checks.int_at_least("diagnose_every", diagnose_every, 0, "0: never")
  if diagnose_every and diagnose_every % c0.eval_every:
    raise UserError(f"diagnose_every must be a multiple of config.eval_every="
                    f"{c0.eval_every}, got {diagnose_every}")
  K = c0.eval_every if steps_per_call is None else steps_per_call
  checks.positive_int("steps_per_call", K)
  if mesh is None:
    mesh = Mesh(np.asarray(jax.devices()), ("runs",))
  if len(mesh.axis_names) != 1:
    raise UserError(f"mesh must be 1-D (one axis for the runs), got axes "
                    f"{mesh.axis_names}")
  axis = mesh.axis_names[0]
  n_dev = mesh.devices.size
  n = len(configs)
  padded = configs + [configs[-1]] * (-n % n_dev)
  workloads = [make_workload(c) for c in padded]
  w = workloads[0]
  _check_workload(w, configs, diagnose_every, validate)
  optimizer = make_optimizer(c0)
  shard = NamedSharding(mesh, P(axis))
  state = _initial_runs(padded, workloads, c0, shard)
  chunk = _make_chunk(w, optimizer, c0, diagnose_every, validate)

  # k is static: one program for the usual chunk, one for a shorter last one.
  chunk_fn = jax.jit(chunk, static_argnums=4, donate_argnums=0,
                     out_shardings=(shard, NamedSharding(mesh, P(None, axis)), shard, shard))

  results: list[dict[str, Any]] = [{"train": [], "eval": [], "diagnostics": [], "nonfinite_steps": 0}
             for _ in range(n)]
  state, step = _train_chunks(chunk_fn, state, results, c0, K, diagnose_every, on_eval)
  if keep_params:
    params = _fetch(state["params"])
    for i in range(n):
      results[i]["params"] = jax.tree.map(lambda x, i=i: np.asarray(x[i]), params)
  for r in results:
    r["final"] = r["eval"][-1][1]
    r["steps"] = step
  return results


def _train_chunks(chunk_fn, state, results: list, c0, K: int, diagnose_every: int,
                  on_eval) -> tuple[Any, int]:
  """Dispatches ``chunk_fn`` up to ``c0.num_steps`` (or until ``on_eval``
  stops it), recording into ``results``; returns the state and the steps
  trained."""
  step, total = 0, c0.num_steps
  while step < total:
    # Up to the next evaluation (or the end), at most K steps per dispatch.
    k = min(K, total - step, c0.eval_every - step % c0.eval_every)
    do_diag = bool(diagnose_every) and step % diagnose_every == 0
    do_eval = (step + k) % c0.eval_every == 0 or step + k == total
    state, (loss, norm), ev, diag = chunk_fn(state, jnp.int32(step), do_diag, do_eval, k)
    _record_chunk(results, step, k, loss, norm, diag if do_diag else None)
    step += k
    if do_eval:
      ev = _fetch(ev)
      for i, r in enumerate(results):
        r["eval"].append((step, {m: float(v[i]) for m, v in ev.items()}))
      if on_eval is not None and on_eval(step, results):
        break
  return state, step


def _record_chunk(results: list, step: int, k: int, loss, norm, diag) -> None:
  """Appends one dispatch of ``k`` steps from ``step`` to every run's
  results: per-step losses and gradient norms (``[k, runs]``), the count of
  non-finite steps, and the diagnostics taken at ``step`` (None: none)."""
  loss, norm = _fetch((loss, norm))
  if diag is not None:
    norms, horizon = _fetch(diag)
    for i, r in enumerate(results):
      r["diagnostics"].append(
          (step, [np.asarray(l[i]).tolist() for l in norms], int(horizon[i])))
  for i, r in enumerate(results):
    for j in range(k):
      r["train"].append((step + j + 1, float(loss[j, i]), float(norm[j, i])))
    r["nonfinite_steps"] += int(np.sum(~np.isfinite(loss[:, i]) | ~np.isfinite(norm[:, i])))


def train_one_at_a_time(configs: Sequence, make_workload: Callable[[Any], Workload],
                        workdir_root: str) -> list[dict]:
  """The same runs through ``train_and_evaluate``, one after another (the
  reference :func:`train_group` is compared with, and the speed anchor of
  ``benchmarks/grid.py``). Returns each run's final eval metrics."""
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  out = []
  for i, c in enumerate(configs):
    out.append(loop.train_and_evaluate(c, os.path.join(workdir_root, f"run_{i}"),
                                       make_workload(c)))
  return out

