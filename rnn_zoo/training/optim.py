"""Optimizers, schedules and gradient clipping from optax, chosen by config.

Config fields read (all required; see experiments/*/config.py):
  optimizer: sgd | momentum | rmsprop | adam | adamw | adagrad
  learning_rate: peak learning rate.
  schedule: constant | cosine | step
  warmup_steps: linear warm-up steps before the schedule (0: none).
  decay_every, decay_factor: for ``step``: multiply by decay_factor every
    decay_every steps.
  momentum: for momentum (and rmsprop's momentum term, 0 = none).
  weight_decay: for adamw.
  clip_norm: clip by global norm (Pascanu et al. 2013); 0 = off.
  clip_value: clip each gradient entry to [-v, v] (char-rnn); 0 = off.
  num_steps: total steps (the cosine schedule's length).
  orthogonal_lr_scale (optional, 1 when absent): the learning rate of the
    orthogonal group over ``learning_rate``: params named in
    :data:`ORTHOGONAL_PARAMS` (expRNN's skew-symmetric ``skew``) get their
    own optimizer at the scaled rate, through ``optax.multi_transform``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from rnn_zoo.errors import UserError

if TYPE_CHECKING:
  from ml_collections import ConfigDict

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad")
# Leaf names of the params trained as the orthogonal group (rnn_zoo.ExpRNN).
ORTHOGONAL_PARAMS = ("skew",)
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(config: ConfigDict) -> optax.Schedule:
  lr, steps = config.learning_rate, config.num_steps
  warm = config.warmup_steps
  if config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif config.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(steps - warm, 1))
  elif config.schedule == "step":
    main = optax.exponential_decay(lr, config.decay_every, config.decay_factor,
                                   staircase=True)
  else:
    raise UserError(f"schedule must be one of {list(SCHEDULES)}, got {config.schedule!r}")
  if warm:
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warm), main], [warm])
  return main


def orthogonal_labels(params: Any) -> Any:
  """``"orthogonal"`` for the leaves named in :data:`ORTHOGONAL_PARAMS`,
  ``"default"`` for the rest (``optax.multi_transform``'s labels)."""
  def label(path, _):
    last = path[-1] if path else None
    name = getattr(last, "key", getattr(last, "name", None))
    return "orthogonal" if name in ORTHOGONAL_PARAMS else "default"
  return jax.tree_util.tree_map_with_path(label, params)


def base_optimizer(config: ConfigDict, sched: optax.ScalarOrSchedule
                   ) -> optax.GradientTransformation:
  """``config.optimizer`` at learning rate ``sched`` (a schedule or a
  number), without the clipping :func:`make_optimizer` chains before it.
  With ``config.orthogonal_lr_scale`` other than 1, the orthogonal group
  (:func:`orthogonal_labels`) gets the same optimizer at the scaled rate."""
  scale = config.get("orthogonal_lr_scale", 1.0)
  opt = _one_optimizer(config, sched)
  if scale == 1.0:
    return opt
  scaled = (lambda step: sched(step) * scale) if callable(sched) else sched * scale
  return optax.multi_transform({"default": opt, "orthogonal": _one_optimizer(config, scaled)},
                               orthogonal_labels)


def _one_optimizer(config, sched) -> optax.GradientTransformation:
  name = config.optimizer
  if name == "sgd":
    return optax.sgd(sched)
  if name == "momentum":
    return optax.sgd(sched, momentum=config.momentum)
  if name == "rmsprop":
    return optax.rmsprop(sched, momentum=config.momentum or None)
  if name == "adam":
    return optax.adam(sched)
  if name == "adamw":
    return optax.adamw(sched, weight_decay=config.weight_decay)
  if name == "adagrad":
    return optax.adagrad(sched)
  raise UserError(f"config.optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def make_optimizer(config: ConfigDict) -> optax.GradientTransformation:
  """``optax.chain(clip by value, clip by global norm, optimizer)``.

  The clipping transforms are in the chain only when their threshold is set
  (> 0), in char-rnn's order: each entry to ``[-clip_value, clip_value]``
  first, then the global norm to ``clip_norm`` (Pascanu et al. 2013).
  """
  sched = make_schedule(config)
  parts = []
  if config.clip_value:
    parts.append(optax.clip(config.clip_value))
  if config.clip_norm:
    parts.append(optax.clip_by_global_norm(config.clip_norm))
  return optax.chain(*parts, base_optimizer(config, sched))


def applied_learning_rate(opt_state: optax.OptState, schedule: optax.Schedule) -> jax.Array:
  """The learning rate the next update applies: ``schedule`` at the
  optimizer's own count (``optax.ScaleByScheduleState``), which stops where
  a skipped non-finite step keeps the old optimizer state, unlike the train
  state's step."""
  if isinstance(opt_state, (optax.InjectHyperparamsState,
                            optax.InjectStatefulHyperparamsState)):  # the grid's
    return jnp.asarray(opt_state.hyperparams["learning_rate"])
  states = [s for s in jax.tree.leaves(
      opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState))
            if isinstance(s, optax.ScaleByScheduleState)]
  if not states:
    raise ValueError("expected a schedule state in the optimizer state, found none")
  # One per group (optax.multi_transform): their counts move together, and
  # the first is the default group's, at the schedule's own rate.
  return schedule(states[0].count)


def clip_stats(grads: Any, *, clip_norm: float, clip_value: float) -> dict:
  """What the optimizer's clipping does to ``grads`` (jittable).

  Returns:
    ``{"grad_norm": global norm before clipping, "clipped": 1.0 when a
    clipping transform changed the gradient at this step, else 0.0}``.
  """
  norm = optax.tree.norm(grads)
  clipped = jnp.zeros((), jnp.bool_)
  if clip_value:
    leaves = jax.tree.leaves(grads)
    max_abs = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves])) if leaves \
        else jnp.zeros(())
    clipped = clipped | (max_abs > clip_value)
    grads, _ = optax.clip(clip_value).update(grads, None)
  if clip_norm:
    clipped = clipped | (optax.tree.norm(grads) > clip_norm)
  return {"grad_norm": norm, "clipped": clipped.astype(jnp.float32)}
