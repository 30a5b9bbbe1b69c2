"""Cells whose recurrence is linear in the hidden state: minGRU, minLSTM
and the Linear Recurrent Unit.

Feng et al. 2024 ("Were RNNs All We Needed?") drop the hidden state from the
gates of the GRU and the LSTM; Orvieto et al. 2023 ("Resurrecting Recurrent
Neural Networks for Long Sequences") keep a complex diagonal recurrence with
no gates at all. What is left is a diagonal linear recurrence

    h_t = a_t * h_{t-1} + b_t,   (a_t, b_t) functions of x_t alone,

so a whole sequence can run with a parallel scan (log depth in T) instead
of a loop of T dependent steps: :func:`rnn_zoo.unroll` does so for every
:class:`LinearRecurrentCell` (``impl="parallel"``). Step by step they are ordinary
zoo cells (generation, the sequential runner).
"""

from __future__ import annotations

import abc
import dataclasses
import math

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Params, ProjectedCell
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

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    gh = self.num_gates * self.hidden_size
    return {"w_ih": (input_size, gh), "b": (gh,)}

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  @abc.abstractmethod
  def coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    """``(a, b)``, each ``[..., H]``, from the projected input ``[..., G*H]``."""

  def log_coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    """``(log a, log b)`` computed stably (for ``impl="parallel_log"``)."""
    raise UserError(f'impl="parallel_log" needs log_coefficients, which '
                    f'{type(self).__name__} does not have; use impl="parallel"')

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    a, b = self.coefficients(params, xp)
    h = self.from_scan(a * self.to_scan(carry.h) + b).astype(carry.h.dtype)
    return base.HiddenCarry(h), h

  def to_scan(self, h: Array) -> Array:
    """The hidden state ``[..., H]`` in the form ``coefficients`` act on
    (itself, except for the LRU's complex state)."""
    return h

  def from_scan(self, z: Array) -> Array:
    """The inverse of :meth:`to_scan`."""
    return z

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
  log-space form (``impl="parallel_log"``) uses ``log(1 - z) = -softplus(k_z)``,
  ``log z = -softplus(-k_z)`` and ``log g``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.MinGRU(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> ys, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)))   # parallel scan
    >>> ys_seq, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)), impl="scan")
    >>> bool(jnp.allclose(ys, ys_seq, atol=1e-6))
    True
  """
  num_gates = 2

  def init(self, key: Array, input_size: int) -> Params:
    return self._init_weights(key, input_size)

  def coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    H = self.hidden_size
    z = jax.nn.sigmoid(xp[..., :H])
    return 1.0 - z, z * g(xp[..., H:])

  def log_coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
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

  def init(self, key: Array, input_size: int) -> Params:
    H = self.hidden_size
    bias = jnp.zeros((3 * H,)).at[:H].set(self.forget_bias)
    return self._init_weights(key, input_size, bias)

  def coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    H = self.hidden_size
    f, i = jax.nn.sigmoid(xp[..., :H]), jax.nn.sigmoid(xp[..., H:2 * H])
    return f / (f + i), i / (f + i) * g(xp[..., 2 * H:])

  def log_coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    H = self.hidden_size
    # log(i / f): the normalized gates are sigmoids of it.
    diff = jax.nn.softplus(-xp[..., :H]) - jax.nn.softplus(-xp[..., H:2 * H])
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(xp[..., 2 * H:])


@dataclasses.dataclass(frozen=True)
class LRU(LinearRecurrentCell):
  r"""The Linear Recurrent Unit (Orvieto et al. 2023): a complex diagonal
  linear recurrence, stably parametrized and normalized.

  With ``N = hidden_size // 2`` complex modes and ``[u_re, u_im] = x_t W_ih
  + b`` (``W_ih = [B_re | B_im]``, so ``B x_t = u_re + i u_im``)::

    lambda = exp(-exp(nu_log) + i exp(theta_log))       (|lambda| < 1 always)
    gamma  = exp(gamma_log)       (init sqrt(1 - |lambda|^2): the state keeps
                                   the input's scale however close |lambda| is to 1)
    h_t = lambda * h_{t-1} + gamma * (B x_t)            (complex, [..., N])

  The zoo's hidden state (and output) is ``[Re h_t, Im h_t]``, ``hidden_size
  = 2N`` reals, so the LRU stacks, probes and trains like every zoo cell.
  The paper's readout ``y_t = Re(C h_t) + D x_t`` is a linear map of it:
  the next layer's input projection or the model's head provides the ``C``
  part (``Re(C h) = C_re Re h - C_im Im h``); the skip ``D x_t`` is not in
  the cell. ``rnn_zoo.unroll`` runs it with the associative scan on complex
  numbers (``impl="parallel"``, what ``"auto"`` picks) or step by step; there is no
  log-space form (``lambda`` is complex).

  Init: ``|lambda|`` uniform on the ring ``[r_min, r_max]`` (in the sense of
  the paper: ``|lambda|^2`` uniform between ``r_min^2`` and ``r_max^2``),
  phase ``arg lambda`` uniform in ``[0, max_phase]``, ``B`` Gaussian with
  variance ``1 / (2 I)`` per real and imaginary part, ``b`` zero. The paper
  uses ``r_min=0.9, r_max=0.999, max_phase=pi/10`` for its longest tasks;
  the defaults are its code's (0, 1, 2 pi).

  Params: ``w_ih [I, 2N]``, ``b [2N]``, ``nu_log [N]``, ``theta_log [N]``,
  ``gamma_log [N]``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LRU(8, r_min=0.9, r_max=0.999)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> lam = jnp.abs(cell.eigenvalues(params))
    >>> bool(jnp.all((lam >= 0.9) & (lam <= 0.999)))
    True
    >>> ys, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)))     # parallel scan
    >>> ys_seq, _ = rz.unroll(cell, params, jnp.ones((2, 5, 3)), impl="scan")
    >>> ys.shape, bool(jnp.allclose(ys, ys_seq, atol=1e-5))
    ((2, 5, 8), True)
  """
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 2 * math.pi

  num_gates = 1
  # What gradflow.parameter_sensitivity calls recurrent: lambda's params.
  recurrent_params = ("nu_log", "theta_log")

  def __post_init__(self):
    super().__post_init__()
    if self.hidden_size % 2:
      raise UserError(f"hidden_size must be even for the LRU (2 reals per complex "
                      f"mode), got {self.hidden_size}")
    if not 0.0 <= self.r_min < self.r_max <= 1.0:
      raise UserError(f"need 0 <= r_min < r_max <= 1, got r_min={self.r_min!r}, "
                      f"r_max={self.r_max!r}")
    if not 0.0 < self.max_phase <= 2 * math.pi:
      raise UserError(f"max_phase must be in (0, 2 pi], got {self.max_phase!r}")

  @property
  def modes(self) -> int:
    """N: the complex modes (``hidden_size // 2``)."""
    return self.hidden_size // 2

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    N = self.modes
    return dict(super().param_shapes(input_size), nu_log=(N,), theta_log=(N,),
                gamma_log=(N,))

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    N, dt = self.modes, self.param_dtype
    k_b, k_r, k_p = jax.random.split(key, 3)
    tiny = 1e-7  # keeps the logs below finite at the ends of the ranges
    u1 = jax.random.uniform(k_r, (N,), jnp.float32, tiny, 1.0)
    nu = -0.5 * jnp.log(u1 * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2)
    nu_log = jnp.log(jnp.maximum(nu, tiny))
    theta_log = jnp.log(self.max_phase * jax.random.uniform(k_p, (N,), jnp.float32, tiny, 1.0))
    gamma_log = 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log)))  # log sqrt(1 - |lambda|^2)
    w = jax.random.normal(k_b, (input_size, 2 * N), jnp.float32) / math.sqrt(2 * input_size)
    return {"w_ih": w.astype(dt), "b": jnp.zeros((2 * N,), dt),
            "nu_log": nu_log.astype(dt), "theta_log": theta_log.astype(dt),
            "gamma_log": gamma_log.astype(dt)}

  def eigenvalues(self, params: Params) -> Array:
    """``lambda`` ``[N]`` (complex)."""
    return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))

  def coefficients(self, params: Params, xp: Array) -> tuple[Array, Array]:
    N = self.modes
    lam = self.eigenvalues(params)
    u = xp[..., :N] + 1j * xp[..., N:]
    return jnp.broadcast_to(lam, u.shape), base.at_rank(jnp.exp(params["gamma_log"]), u.ndim) * u

  def to_scan(self, h: Array) -> Array:
    return h[..., :self.modes] + 1j * h[..., self.modes:]

  def from_scan(self, z: Array) -> Array:
    return jnp.concatenate([z.real, z.imag], axis=-1)
