"""Cells whose recurrence is linear in the hidden state: minGRU and minLSTM.

Feng et al. 2024 ("Were RNNs All We Needed?") drop the hidden state from the
gates of the GRU and the LSTM. What is left is a diagonal linear recurrence

    h_t = a_t * h_{t-1} + b_t,   (a_t, b_t) functions of x_t alone,

so a whole sequence can run with a parallel scan (log depth in T) instead
of a loop of T dependent steps: :func:`rnn_zoo.unroll` does so for every
:class:`LinearRecurrentCell` (``parallel=``). Step by step they are ordinary
zoo cells (generation, the sequential runner).
"""

from __future__ import annotations

import abc
import dataclasses

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import ProjectedCell
from rnn_zoo.errors import UserError

Array = jax.Array


def g(x: Array) -> Array:
  """Feng et al.'s positive activation of the candidate state:
  ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous, > 0)."""
  return jnp.where(x >= 0, jnp.maximum(x, 0) + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
  """``log(g(x))``, without forming ``g`` (stable for very negative x)."""
  return jnp.where(x >= 0, jnp.log(jnp.maximum(x, 0) + 0.5), -jax.nn.softplus(-x))


@dataclasses.dataclass(frozen=True)
class LinearRecurrentCell(ProjectedCell):
  """A cell whose step is ``h_t = a_t * h_{t-1} + b_t`` (elementwise), with
  ``(a_t, b_t) = coefficients(params, x_t W_ih + b)``: no recurrent matmul.

  Subclasses implement ``init`` and ``coefficients``, and for the log-space
  scan ``log_coefficients`` (``log a_t``, ``log b_t``; needs ``b_t > 0``).
  The output is the hidden state. Params: ``w_ih [I, G*H]`` and ``b [G*H]``
  only.
  """

  def param_shapes(self, input_size):
    gh = self.num_gates * self.hidden_size
    return {"w_ih": (input_size, gh), "b": (gh,)}

  def initial_carry(self, batch_shape=(), dtype=None):
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  @abc.abstractmethod
  def coefficients(self, params, xp: Array) -> tuple[Array, Array]:
    """``(a, b)``, each ``[..., H]``, from the projected input ``[..., G*H]``."""

  def log_coefficients(self, params, xp: Array) -> tuple[Array, Array]:
    """``(log a, log b)`` computed stably (for ``parallel="log"``)."""
    raise UserError(f'parallel="log" needs log_coefficients, which '
                    f'{type(self).__name__} does not have; use parallel=True')

  def step_projected(self, params, carry, xp):
    a, b = self.coefficients(params, xp)
    h = (a * carry.h + b).astype(carry.h.dtype)
    return base.HiddenCarry(h), h

  def _init_weights(self, key, input_size, bias=None):
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    w = jnp.concatenate([base.glorot_uniform(k, (input_size, H), dt)
                         for k in jax.random.split(key, self.num_gates)], axis=-1)
    b = jnp.zeros((self.num_gates * H,), dt) if bias is None else bias.astype(dt)
    return {"w_ih": w, "b": b}


@dataclasses.dataclass(frozen=True)
class MinGRU(LinearRecurrentCell):
  r"""minGRU (Feng et al. 2024): a GRU whose gates read only the input.

  With ``[k_z, k_h] = x_t W_ih + b``::

    z_t = sigmoid(k_z),   h~_t = g(k_h)   (g > 0: see :func:`g`)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,   y_t = h_t

  Params: ``w_ih [I, 2H]`` (blocks z, h), ``b [2H]`` (zeros). The
  log-space form (``parallel="log"``) uses ``log(1 - z) = -softplus(k_z)``,
  ``log z = -softplus(-k_z)`` and ``log g``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.MinGRU(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> ys, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)))   # parallel scan
    >>> ys_seq, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)), parallel=False)
    >>> bool(jnp.allclose(ys, ys_seq, atol=1e-6))
    True
  """
  num_gates = 2

  def init(self, key, input_size):
    return self._init_weights(key, input_size)

  def coefficients(self, params, xp):
    H = self.hidden_size
    z = jax.nn.sigmoid(xp[..., :H])
    return 1.0 - z, z * g(xp[..., H:])

  def log_coefficients(self, params, xp):
    H = self.hidden_size
    k_z = xp[..., :H]
    return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(xp[..., H:])


@dataclasses.dataclass(frozen=True)
class MinLSTM(LinearRecurrentCell):
  r"""minLSTM (Feng et al. 2024): an LSTM whose gates read only the input,
  with the forget and input gates normalized to sum to one.

  With ``[k_f, k_i, k_h] = x_t W_ih + b``::

    f_t = sigmoid(k_f),  i_t = sigmoid(k_i),  h~_t = g(k_h)
    f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)
    h_t = f'_t * h_{t-1} + i'_t * h~_t,   y_t = h_t

  Params: ``w_ih [I, 3H]`` (blocks f, i, h), ``b [3H]``: the forget block
  starts at ``forget_bias`` (default 1.0, as the zoo's LSTM), the rest at 0.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.MinLSTM(8)
    >>> sorted(cell.init(jax.random.key(0), input_size=3))
    ['b', 'w_ih']
  """
  forget_bias: float = 1.0

  num_gates = 3

  def init(self, key, input_size):
    H = self.hidden_size
    bias = jnp.zeros((3 * H,)).at[:H].set(self.forget_bias)
    return self._init_weights(key, input_size, bias)

  def coefficients(self, params, xp):
    H = self.hidden_size
    f, i = jax.nn.sigmoid(xp[..., :H]), jax.nn.sigmoid(xp[..., H:2 * H])
    return f / (f + i), i / (f + i) * g(xp[..., 2 * H:])

  def log_coefficients(self, params, xp):
    H = self.hidden_size
    # log(i / f): the normalized gates are sigmoids of it.
    diff = jax.nn.softplus(-xp[..., :H]) - jax.nn.softplus(-xp[..., H:2 * H])
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(xp[..., 2 * H:])
