"""Sequence models: inputs -> (stacked) recurrent layers -> a readout head."""

from __future__ import annotations

from typing import Any, Callable, Sequence, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_zoo import checks
from rnn_zoo import gradflow
from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.nn.recurrent import RNN
from rnn_zoo.errors import UserError

READOUTS = ("last", "all")
# "none": recurrent layers fed one into the next; "residual_glu": each layer
# in a pre-norm residual block (LayerNorm -> recurrent layer -> GELU -> GLU
# -> dropout -> + skip) after a Dense encoder to the hidden size, the block
# Orvieto et al. (2023) put the LRU in (and the minGRU paper its cells).
BLOCKS = ("none", "residual_glu")


class SequenceModel(nn.Module):
  """Many-to-one (``readout="last"``) or many-to-many (``"all"``) model.

  Token inputs (int ``[B, T]``) are one-hot encoded with ``vocab_size``
  classes; float inputs (``[B, T, F]``) are used as they are.

  Attributes:
    cell: the recurrent cell of every layer.
    output_size: size of the head's output per readout position.
    num_layers: stacked recurrent layers.
    dropout_rate: dropout between recurrent layers.
    readout: ``"last"``: the head reads the final hidden state (``[B, out]``);
      ``"all"``: every step's output (``[B, T, out]``).
    vocab_size: number of token classes for int inputs (one-hot).
    block: ``"none"`` (the layers feed one another directly) or
      ``"residual_glu"``: a Dense encoder to the hidden size, then per layer
      ``x + dropout(GLU(gelu(rnn(LayerNorm(x)))))`` with
      ``GLU(y) = a * sigmoid(b)``, ``[a, b] = Dense(2H)(y)``: the block of
      the LRU paper, which gives linear recurrences (LRU, minGRU) the
      nonlinearity between layers they lack; the head reads the last
      block's output (at the last step for ``readout="last"``).

  ``hidden_probes`` (one entry per layer, or None) are passed to the
  recurrent layers: see :func:`rnn_zoo.unroll`.

  ``cudnn``: run the (LSTM) recurrent layers through cuDNN on an NVIDIA GPU
  (:mod:`rnn_zoo.cudnn`); a call with ``hidden_probes`` (the gradient-flow
  diagnostics) runs them on the scan runner, which takes probes.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> model = rz.models.SequenceModel(rz.LSTM(16), output_size=1)
    >>> xs = jnp.zeros((4, 30, 2))
    >>> params = model.init(jax.random.key(0), xs)
    >>> model.apply(params, xs).shape
    (4, 1)
  """
  cell: Cell
  output_size: int
  num_layers: int = 1
  dropout_rate: float = 0.0
  readout: str = "last"
  vocab_size: int | None = None
  block: str = "none"
  cudnn: bool = False

  @nn.compact
  def __call__(self, inputs: Any, *, deterministic: bool | None = None,
               hidden_probes: Sequence[jax.Array] | None = None) -> Any:
    if self.readout not in READOUTS:
      raise UserError(f"readout must be one of {list(READOUTS)}, got {self.readout!r}")
    if self.block not in BLOCKS:
      raise UserError(f"block must be one of {list(BLOCKS)}, got {self.block!r}")
    impl = "cudnn" if self.cudnn and hidden_probes is None else "auto"
    # The zoo's dropout rule: None drops out exactly when a "dropout" stream is given.
    deterministic = not checks.use_dropout(self.dropout_rate, deterministic,
                                           has_key=self.has_rng("dropout"))
    if jnp.issubdtype(inputs.dtype, jnp.integer):
      if self.vocab_size is None:
        raise UserError("vocab_size is required for integer (token) inputs")
      xs = jax.nn.one_hot(inputs, self.vocab_size)
    else:
      xs = inputs
    if self.block == "residual_glu":
      x = self._residual_blocks(xs, deterministic, hidden_probes, impl)
      feats = x[:, -1] if self.readout == "last" else x
      return nn.Dense(self.output_size, name="head")(feats)
    ys, carries = RNN(self.cell, num_layers=self.num_layers,
                      dropout_rate=self.dropout_rate, return_carry=True,
                      impl=impl, name="rnn")(xs, deterministic=deterministic,
                                  hidden_probes=hidden_probes)
    feats = carries[-1].h if self.readout == "last" else ys
    return nn.Dense(self.output_size, name="head")(feats)

  @nn.nowrap  # plain functions of params: usable on the unbound model
  def recurrent_layers(self, params: Params) -> tuple:
    """``((cell, cell params), ...)``, one per recurrent layer, read from
    :meth:`init`'s variables."""
    p = params["params"]
    if self.block == "residual_glu":
      return tuple((self.cell, p[f"rnn_{i}"]["stack"]["layer_0"])
                   for i in range(self.num_layers))
    return tuple((self.cell, p["rnn"]["stack"][f"layer_{i}"])
                 for i in range(self.num_layers))

  @nn.nowrap
  def hidden_shapes(self, inputs: jax.Array) -> tuple:
    """One ``[B, T, H]`` per recurrent layer: the ``hidden_probes`` shapes
    for ``inputs`` ``[B, T, ...]``."""
    b, t = inputs.shape[:2]
    return ((b, t, self.cell.hidden_size),) * self.num_layers

  @nn.nowrap
  def diagnostics(self, inputs_of: Callable[[Any], jax.Array] = lambda batch: batch["inputs"]
                  ) -> gradflow.Diagnostics:
    """The gradient-flow hook (:class:`rnn_zoo.gradflow.Diagnostics`) of a
    workload whose batches hold this model's inputs at ``inputs_of(batch)``."""
    return gradflow.Diagnostics(
        hidden_shapes=lambda batch: self.hidden_shapes(inputs_of(batch)),
        layers=self.recurrent_layers,
        first_layer_inputs=self.rnn_inputs if self.block == "residual_glu" else None)

  @nn.nowrap
  def rnn_inputs(self, params: Params, xs: jax.Array) -> jax.Array:
    """What the first recurrent layer reads, given ``xs`` (float ``[B, T,
    F]``): ``xs`` itself, or with ``residual_glu`` the encoder and the first
    LayerNorm of :meth:`_residual_blocks` (for diagnostics that drive the
    first layer's cell directly)."""
    if self.block != "residual_glu":
      return xs
    p = params["params"]
    x = nn.Dense(self.cell.hidden_size).apply({"params": p["encoder"]}, xs)
    return cast(jax.Array, nn.LayerNorm().apply({"params": p["norm_0"]}, x))

  def _residual_blocks(self, xs, deterministic, hidden_probes, impl):
    """The ``residual_glu`` stack; layer i's params are ``rnn_{i}``."""
    H = self.cell.hidden_size
    x = nn.Dense(H, name="encoder")(xs)
    for i in range(self.num_layers):
      probes = None if hidden_probes is None else (hidden_probes[i],)
      y = RNN(self.cell, impl=impl, name=f"rnn_{i}")(
          nn.LayerNorm(name=f"norm_{i}")(x), deterministic=deterministic,
          hidden_probes=probes)
      a, b = jnp.split(nn.Dense(2 * H, name=f"glu_{i}")(nn.gelu(y)), 2, axis=-1)
      y = nn.Dropout(self.dropout_rate)(a * jax.nn.sigmoid(b),
                                        deterministic=deterministic)
      x = x + y
    return x
