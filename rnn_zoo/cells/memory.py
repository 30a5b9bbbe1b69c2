"""Cells designed for long memory: expRNN, IndRNN and coRNN.

* :class:`ExpRNN` (Lezcano-Casado & Martínez-Rubio, ICML 2019, "Cheap
  orthogonal constraints in neural networks"): an exactly orthogonal
  recurrent weight ``W = expm(S)``, ``S`` skew-symmetric, and modReLU.
* :class:`IndRNN` (Li, Li, Cook, Zhu & Gao, CVPR 2018, "Independently
  recurrent neural network"): one recurrent weight per unit, bounded so that
  ``|u|^T`` stays in a chosen range.
* :class:`CoRNN` (Rusch & Mishra, ICLR 2021, "Coupled oscillatory recurrent
  neural network"): a second-order ODE of coupled oscillators, discretized.

Each is a :class:`~rnn_zoo.cells.cell.ProjectedCell`: the input enters
through ``x_t W_ih`` (hoisted out of the time loop by the runner); the rest
of the step is below. They run on the runner's scan (``impl="scan"``), in
stacks, the Flax module, the binaries (``config.cell``) and the
gradient-flow benchmark like every zoo cell.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_zoo import checks
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Params, ProjectedCell

Array = jax.Array

EXPRNN_INITS = ("henaff", "cayley")
INDRNN_ACTIVATIONS = ("relu", "tanh")


def skew_blocks(angles: Array, hidden_size: int, dtype: jax.typing.DTypeLike) -> Array:
  """``[H, H]``: a parameter ``A`` whose skew part ``A - Aᵀ`` is block
  diagonal with 2x2 blocks ``[[0, a], [-a, 0]]`` (the ``angles``, one per
  pair of units; an odd last unit gets none): the expRNN code's
  ``create_diag_``."""
  n = hidden_size // 2
  a = jnp.zeros((hidden_size, hidden_size), dtype)
  idx = jnp.arange(n)
  return a.at[2 * idx, 2 * idx + 1].set(angles.astype(dtype))


def modrelu(z: Array, b: Array) -> Array:
  """``sign(z) * relu(|z| + b)`` (Arjovsky et al. 2016; real inputs)."""
  return jnp.sign(z) * jax.nn.relu(jnp.abs(z) + b)


@dataclasses.dataclass(frozen=True)
class ExpRNN(ProjectedCell):
  r"""``h_t = modReLU(x_t W_ih + h_{t-1} W, b)``, ``W = expm(A - Aᵀ)``.

  ``W`` is exactly orthogonal for any ``A`` (the exponential of a
  skew-symmetric matrix), so the recurrence neither shrinks nor grows the
  hidden state's norm before the activation, at every step of training. The
  parameter is ``A`` itself (its skew part is what counts); ``W`` is made
  once per call of the runner (:meth:`prepare`) and differentiated through
  ``jax.scipy.linalg.expm``. Train ``A`` at a smaller learning rate than the
  rest (the paper: RMSprop 2e-4 and 2e-5 for ``A``): the binaries'
  ``config.orthogonal_learning_rate`` puts ``params[...]["skew"]`` in its
  own ``optax.multi_transform`` group.

  Params: ``w_ih [I, H]`` (Kaiming normal for ReLU, the paper's code),
  ``skew [H, H]`` (``A``), ``b [H]`` (modReLU's bias, ``U(-0.01, 0.01)``).

  Attributes:
    init_scheme: ``"henaff"`` (``A - Aᵀ`` block diagonal with angles ``U[-π, π]``,
      Henaff et al. 2016) or ``"cayley"`` (angles ``-sqrt((1 - cos s) / (1 +
      cos s))``, ``s ~ U[0, π/2]``), as in the paper's code.

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np, rnn_zoo as rz
    >>> cell = rz.ExpRNN(6)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> w = cell.recurrent_weight(params)
    >>> bool(np.allclose(w @ w.T, np.eye(6), atol=1e-5))
    True
  """
  init_scheme: str = "henaff"

  recurrent_params = ("skew",)  # what gradflow.parameter_sensitivity differentiates

  def __post_init__(self):
    super().__post_init__()
    base.check_choice("init_scheme", self.init_scheme, EXPRNN_INITS)

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    H = self.hidden_size
    return {"w_ih": (input_size, H), "skew": (H, H), "b": (H,)}

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    k_ih, k_a, k_b = jax.random.split(key, 3)
    # Kaiming normal (fan_in, ReLU gain): std sqrt(2 / I).
    w_ih = jax.random.normal(k_ih, (input_size, H), dt) * math.sqrt(2.0 / input_size)
    if self.init_scheme == "henaff":
      angles = jax.random.uniform(k_a, (H // 2,), jnp.float32, -math.pi, math.pi)
    else:
      s = jax.random.uniform(k_a, (H // 2,), jnp.float32, 0.0, math.pi / 2)
      angles = -jnp.sqrt((1.0 - jnp.cos(s)) / (1.0 + jnp.cos(s)))
    b = jax.random.uniform(k_b, (H,), dt, -0.01, 0.01)
    return {"w_ih": w_ih, "skew": skew_blocks(angles, H, dt), "b": b}

  def recurrent_weight(self, params: Params) -> Array:
    """``W = expm(A - Aᵀ)`` ``[H, H]``, orthogonal."""
    a = params["skew"]
    s = (a - a.T).astype(jnp.promote_types(a.dtype, jnp.float32))
    return jax.scipy.linalg.expm(s).astype(a.dtype)

  def prepare(self, params: Params) -> Params:
    if "w_hh" in params:
      return params
    return {**params, "w_hh": self.recurrent_weight(params)}

  def input_projection(self, params: Params, x: Array) -> Array:
    return base.matmul(x, params["w_ih"], self.dtype)

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    w = self.prepare(params)["w_hh"]
    z = xp + base.matmul(carry.h, w, self.dtype)
    h = modrelu(z, base.at_rank(params["b"], z.ndim)).astype(carry.h.dtype)
    return base.HiddenCarry(h), h


@dataclasses.dataclass(frozen=True)
class IndRNN(ProjectedCell):
  r"""``h_t = act(x_t W_ih + u ⊙ h_{t-1} + b)``: each unit its own recurrence.

  A unit's gradient through T steps is a product of ``u`` and the
  activation's slopes, so bounding ``|u|`` bounds it: with ``t_max`` the
  recurrent weights are clipped into ``[-m^(1/t_max), m^(1/t_max)]`` in the
  forward pass (``m`` = ``magnitude``, 2 in the paper's code), so ``|u|^T``
  stays below ``m`` for ``T <= t_max``; a weight beyond the bound acts as the
  bound (and gets no gradient), the projected form of the paper's clipping
  after each update. Layers are meant to be stacked (2 of 128 on adding in
  the paper).

  Params: ``w_ih [I, H]`` (``U(±1/sqrt(H))``), ``u [H]`` (``U[0, bound]``,
  the paper's code; ``U[0, 1]`` without ``t_max``), ``b [H]`` (zeros).

  Attributes:
    activation: ``"relu"`` (the paper) or ``"tanh"``.
    t_max: the sequence length the bound is for (0: no bound).
    magnitude: ``m``, the largest ``|u|^t_max``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.IndRNN(8, t_max=100)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> float(params["u"].max()) <= 2 ** (1 / 100)
    True
  """
  activation: str = "relu"
  t_max: int = 0
  magnitude: float = 2.0

  recurrent_params = ("u",)

  def __post_init__(self):
    super().__post_init__()
    base.check_choice("activation", self.activation, INDRNN_ACTIVATIONS)
    checks.int_at_least("t_max", self.t_max, 0, "0: no bound")
    checks.positive_number("magnitude", self.magnitude)

  @property
  def bound(self) -> float | None:
    """``magnitude^(1/t_max)``, or None without ``t_max``."""
    return self.magnitude ** (1.0 / self.t_max) if self.t_max else None

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    H = self.hidden_size
    return {"w_ih": (input_size, H), "u": (H,), "b": (H,)}

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    k_ih, k_u = jax.random.split(key)
    high = 1.0 if self.bound is None else self.bound
    return {"w_ih": base.uniform_fan(k_ih, (input_size, H), dt, H),
            "u": jax.random.uniform(k_u, (H,), dt, 0.0, high),
            "b": jnp.zeros((H,), dt)}

  def recurrent_weights(self, params: Params) -> Array:
    """``u`` as the step uses it (clipped to the bound)."""
    u = params["u"]
    return u if self.bound is None else jnp.clip(u, -self.bound, self.bound)

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    u = base.at_rank(self.recurrent_weights(params), carry.h.ndim)
    pre = xp + (u * carry.h).astype(xp.dtype)
    h = (jax.nn.relu(pre) if self.activation == "relu" else jnp.tanh(pre))
    h = h.astype(carry.h.dtype)
    return base.HiddenCarry(h), h


class OscillatorCarry(NamedTuple):
  """Carry of :class:`CoRNN`."""
  h: jax.Array  # [*batch, H] the oscillators' positions y (the output).
  z: jax.Array  # [*batch, H] their velocities y'.


@dataclasses.dataclass(frozen=True)
class CoRNN(ProjectedCell):
  r"""Coupled oscillators: ``y'' = tanh(W y + 𝒲 y' + V x + b) − γ y − ε y'``.

  Discretized as in the paper's code (IMEX): ::

    z_t = z_{t-1} + dt (tanh(y_{t-1} W + z_{t-1} 𝒲 + x_t V + b) − γ y_{t-1} − ε z_{t-1})
    y_t = y_{t-1} + dt z_t

  The hidden state's gradients are bounded for any T (the paper's
  Proposition); the output is the position ``y_t``.

  Params: ``w_ih [I, H]`` (V), ``w_hh [H, H]`` (W, on y), ``w_hz [H, H]``
  (𝒲, on z), ``b [H]``; all ``U(±1/sqrt(I + 2H))``, PyTorch's ``Linear``
  over ``[x, y, z]`` as in the paper's code.

  Attributes:
    dt: the time step (0.042: the paper's sequential-MNIST setting).
    gamma: γ, the oscillators' stiffness (2.7).
    epsilon: ε, the damping (4.7).

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.CoRNN(8)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> carry, y = cell.step(params, cell.initial_carry((3,)), jnp.ones((3, 2)))
    >>> y.shape, carry.z.shape
    ((3, 8), (3, 8))
  """
  dt: float = 0.042
  gamma: float = 2.7
  epsilon: float = 4.7

  recurrent_params = ("w_hh", "w_hz")

  def __post_init__(self):
    super().__post_init__()
    for name in ("dt", "gamma", "epsilon"):
      checks.positive_number(name, getattr(self, name))

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    H = self.hidden_size
    return {"w_ih": (input_size, H), "w_hh": (H, H), "w_hz": (H, H), "b": (H,)}

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    bound = 1.0 / math.sqrt(input_size + 2 * H)
    ks = jax.random.split(key, 4)
    u = lambda k, shape: jax.random.uniform(k, shape, dt, -bound, bound)
    return {"w_ih": u(ks[0], (input_size, H)), "w_hh": u(ks[1], (H, H)),
            "w_hz": u(ks[2], (H, H)), "b": u(ks[3], (H,))}

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return OscillatorCarry(self._zeros(batch_shape, dtype), self._zeros(batch_shape, dtype))

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    y, z = carry.h, carry.z
    pre = (xp + base.matmul(y, params["w_hh"], self.dtype)
           + base.matmul(z, params["w_hz"], self.dtype))
    force = jnp.tanh(pre).astype(z.dtype) - self.gamma * y - self.epsilon * z
    z = z + self.dt * force
    y = y + self.dt * z
    return OscillatorCarry(y, z), y


__all__ = ["ExpRNN", "IndRNN", "CoRNN", "OscillatorCarry", "modrelu", "skew_blocks",
           "EXPRNN_INITS", "INDRNN_ACTIVATIONS"]
