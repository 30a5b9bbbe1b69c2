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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from rnn_zoo.errors import UserError

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad")
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(config) -> optax.Schedule:
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


def make_optimizer(config) -> optax.GradientTransformation:
  """The optimizer, without clipping (the train step clips; see ``clip``)."""
  sched = make_schedule(config)
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
  raise UserError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def clip(grads, *, clip_norm: float, clip_value: float):
  """Clips with optax and reports what it did.

  Returns:
    ``(clipped_grads, stats)``; ``stats["grad_norm"]`` is the global norm
    before clipping and ``stats["clipped"]`` is 1.0 when clipping changed the
    gradient at this step.
  """
  norm = optax.tree.norm(grads)
  clipped = jnp.zeros((), jnp.bool_)
  if clip_value:
    max_abs = max(jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grads))
    clipped = clipped | (max_abs > clip_value)
    grads, _ = optax.clip(clip_value).update(grads, None)
  if clip_norm:
    clipped = clipped | (optax.tree.norm(grads) > clip_norm)
    grads, _ = optax.clip_by_global_norm(clip_norm).update(grads, None)
  return grads, {"grad_norm": norm, "clipped": clipped.astype(jnp.float32)}
