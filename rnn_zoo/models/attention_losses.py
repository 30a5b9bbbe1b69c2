"""The training signals of an attention decoder (Xu et al. 2015, "Show,
Attend and Tell"): the doubly stochastic penalty of soft attention, and the
REINFORCE estimate of hard attention's gradient (the sampled locations' log
probabilities, the surrogate loss, rewards to go). Used by
:class:`~rnn_zoo.models.Captioner`; the attention cell itself is
:class:`rnn_zoo.AttentionCell`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_zoo.errors import UserError

Array = jax.Array


def doubly_stochastic_penalty(alphas: Array, mask: Array | None = None) -> Array:
  """Xu et al.'s regularizer ``sum_i (1 - sum_t alpha_ti)^2`` per example.

  Args:
    alphas: ``[B, T, L]`` attention weights of every step.
    mask: optional ``[B, T]`` valid steps (padding does not count).

  Returns:
    ``[B]``: encourages the decoder to attend to every location over the
    caption.
  """
  if mask is not None:
    alphas = alphas * mask[..., None]
  return jnp.sum((1.0 - jnp.sum(alphas, axis=1)) ** 2, axis=-1)


def location_log_probs(alphas: Array, locations: Array) -> Array:
  """``log alpha_t[s_t]`` ``[B, T]`` of the sampled locations (0 where the
  step used the expectation, ``location == -1``)."""
  safe = jnp.maximum(locations, 0)
  lp = jnp.log(jnp.take_along_axis(alphas, safe[..., None], axis=-1)[..., 0])
  return jnp.where(locations >= 0, lp, 0.0)


def reinforce_surrogate(log_probs: Array, reward: Array, baseline: Array) -> Array:
  """A loss whose gradient is the REINFORCE estimate (Williams 1992).

  ``-(reward - baseline) * sum_t log p(s_t)``, with the reward and the
  baseline held constant: its gradient is ``-(R - b) grad log p(s)``, an
  unbiased estimate of ``-grad E[R]`` for any ``b`` that does not depend on
  ``s`` (Xu et al. use a moving average of the reward).

  With one reward per choice (``reward`` shaped like ``log_probs``) the loss
  is ``-sum_t (R_t - b_t) log p(s_t)``: give choice t the reward to go
  (:func:`rewards_to_go`, the part of the return that choice t can still
  change), and the estimate of ``-grad E[R]`` stays unbiased with less
  variance.

  Args:
    log_probs: ``[B, ...]`` log-probabilities of the sampled choices (summed
      over the trailing axes).
    reward: ``[B]`` e.g. ``log p(caption | locations)``, or ``[B, ...]`` like
      ``log_probs``: one reward per choice.
    baseline: a scalar, ``[B]``, or (per-choice rewards) broadcastable to
      ``log_probs``.

  Returns:
    ``[B]`` surrogate losses.
  """
  try:  # broadcast explicitly (no implicit rank promotion)
    shape = jnp.broadcast_shapes(jnp.shape(reward), jnp.shape(baseline))
  except ValueError as e:
    raise UserError(f"reward {list(jnp.shape(reward))} and baseline "
                    f"{list(jnp.shape(baseline))} do not broadcast together") from e
  advantage = jax.lax.stop_gradient(
      jnp.broadcast_to(reward, shape) - jnp.broadcast_to(baseline, shape))
  if advantage.shape == log_probs.shape and log_probs.ndim > 1:
    return -(advantage * log_probs).reshape(log_probs.shape[0], -1).sum(-1)
  lp = log_probs.reshape(log_probs.shape[0], -1).sum(-1)
  if advantage.shape not in ((), lp.shape):
    raise UserError(f"reward - baseline must be a scalar, [batch] {list(lp.shape)} or "
                    f"shaped like log_probs {list(log_probs.shape)}, got "
                    f"{list(advantage.shape)}")
  return -advantage * lp


def rewards_to_go(step_rewards: Array) -> Array:
  """``[B, T]`` -> ``[B, T]``: ``sum_{t' >= t} r_t'``, the return from step t
  on (a choice made at step t cannot change the rewards before it)."""
  return jnp.flip(jnp.cumsum(jnp.flip(step_rewards, -1), -1), -1)


__all__ = ["doubly_stochastic_penalty", "location_log_probs",
           "reinforce_surrogate", "rewards_to_go"]
