"""A character-level language model as pure functions (char-rnn's model).

Tokens -> embedding (or one-hot) -> stacked recurrent layers -> logits over
the vocabulary. ``apply`` runs whole windows through the runner (optionally
with truncated BPTT); ``step`` advances one token, for
:func:`rnn_zoo.decoding.generate`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rnn_zoo import checks
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell, ProjectedCell
from rnn_zoo.errors import UserError
from rnn_zoo.models import protocol
from rnn_zoo.runner import StackedRNN, truncated_bptt


@dataclasses.dataclass(frozen=True)
class CharLM:
  """Embedding (or one-hot) -> ``num_layers`` x ``cell`` -> dense logits.

  ``dropout_rate`` drops the inputs of layers 1..L-1 and the top layer's
  output before the head (the non-recurrent connections, as in char-rnn and
  Zaremba et al. 2014), in training only.

  Params: ``{"embed": [V, E]`` (absent for one-hot), ``"stack": {...}``,
  ``"head": {"w": [H, V], "b": [V]}}``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> lm = rz.models.CharLM(vocab_size=20, cell=rz.LSTM(32), num_layers=2)
    >>> params = lm.init(key=jax.random.key(0))
    >>> logits, carry = lm.apply(params, jnp.zeros((4, 50), jnp.int32))
    >>> logits.shape
    (4, 50, 20)
  """
  vocab_size: int
  cell: Cell
  num_layers: int = 2
  embed_size: int | None = None   # None: one-hot inputs of size vocab_size.
  dropout_rate: float = 0.0
  cudnn: bool = False  # the LSTM layers through cuDNN (rnn_zoo.cudnn) in apply

  def __post_init__(self):
    base.check_positive_int("vocab_size", self.vocab_size)
    base.check_positive_int("num_layers", self.num_layers)
    if self.embed_size is not None:
      base.check_positive_int("embed_size", self.embed_size)

  @functools.cached_property
  def stack(self) -> StackedRNN:
    return StackedRNN.of(self.cell, self.num_layers, dropout_rate=self.dropout_rate)

  @protocol.keyword_key
  def init(self, *, key: jax.Array) -> dict:
    k_emb, k_stack, k_head = jax.random.split(key, 3)
    in_size = self.embed_size or self.vocab_size
    H, V = self.cell.hidden_size, self.vocab_size
    params: dict[str, Any] = {"stack": self.stack.init(k_stack, in_size),
              # Small head: the first loss is close to ln(V) (min-char-rnn's check).
              "head": {"w": 0.01 * jax.random.normal(k_head, (H, V)),
                       "b": jnp.zeros((V,))}}
    if self.embed_size:
      params["embed"] = jax.random.normal(k_emb, (V, self.embed_size)) / math.sqrt(self.embed_size)
    return params

  def initial_carry(self, batch_size: int) -> tuple:
    return self.stack.initial_carry((batch_size,))

  def check_tokens(self, tokens: Any, name: str = "tokens") -> None:
    """Token ids must be integers in ``[0, vocab_size)``. JAX clamps
    out-of-range indices silently, so concrete ids are checked here; under
    ``jit`` (traced ids) :meth:`embed` turns them into NaN instead."""
    if not hasattr(tokens, "dtype") or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise UserError(f"{name} must be integer ids, got "
                      f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
    checks.ids_in_range(name, tokens, self.vocab_size)

  def _valid(self, tokens):
    return (tokens >= 0) & (tokens < self.vocab_size)

  def embed(self, params: dict, tokens: jax.Array) -> jax.Array:
    """``[..., E]`` embeddings (or one-hot rows); NaN for ids outside
    ``[0, vocab_size)``, so that a bad id under jit poisons the loss (the
    training loop's non-finite check stops on it) instead of reading a
    clamped or all-zero row."""
    if self.embed_size:
      return self._rows(params["embed"], tokens)
    x = jax.nn.one_hot(tokens, self.vocab_size)
    return jnp.where(self._valid(tokens)[..., None], x, jnp.nan)

  def _rows(self, table, tokens):
    """``table[tokens]`` with NaN rows for invalid ids (:func:`checks.take_rows`)."""
    return checks.take_rows(table, tokens)

  def apply(self, params: dict, tokens: jax.Array, carry: tuple | None = None, *,
            window: int | None = None, key: jax.Array | None = None,
            deterministic: bool | None = None) -> tuple[jax.Array, tuple]:
    """Logits ``[B, T, V]`` for tokens ``[B, T]`` and the final carry.

    With ``window``, gradients are cut every ``window`` steps (truncated
    BPTT) while the carry flows through. Dropout follows the zoo's rule
    (:mod:`rnn_zoo.models.protocol`): with ``deterministic=None`` it is on
    exactly when ``key`` is given.
    """
    self.check_tokens(tokens)
    xs = self.embed(params, tokens)
    if carry is None:
      carry = self.initial_carry(tokens.shape[0])
    use_dropout = checks.use_dropout(self.dropout_rate, deterministic,
                                     has_key=key is not None)
    k_stack, k_out = jax.random.split(key) if use_dropout and key is not None else (None, None)
    kw: dict[str, Any] = dict(initial_carry=carry, key=k_stack, deterministic=not use_dropout,
                              impl="cudnn" if self.cudnn else "auto")
    if window:
      ys, carry = truncated_bptt(self.stack, params["stack"], xs, window=window, **kw)
    else:
      ys, carry = self.stack.apply(params["stack"], xs, **kw)
    if use_dropout:  # also on the top layer's output, as char-rnn does
      keep = 1.0 - self.dropout_rate
      assert k_out is not None
      ys = jnp.where(jax.random.bernoulli(k_out, keep, ys.shape), ys / keep, 0.0)
    return base.affine(ys, params["head"]["w"], params["head"]["b"]), carry

  def loss(self, params: dict, tokens: jax.Array, targets: jax.Array,
           carry: tuple | None = None, *, key: jax.Array | None = None,
           deterministic: bool | None = None, window: int | None = None
           ) -> tuple[jax.Array, tuple[dict, tuple]]:
    """``(mean cross-entropy in nats, (metrics, final carry))`` of next-token
    prediction: ``targets [B, T]`` for ``tokens [B, T]`` (``carry``, ``key``,
    ``deterministic`` and ``window`` as in :meth:`apply`). The metrics are
    ``nats_per_char``, ``bits_per_char`` and ``accuracy``."""
    logits, carry = self.apply(params, tokens, carry, window=window, key=key,
                               deterministic=deterministic)
    if tuple(getattr(targets, "shape", ())) != tuple(tokens.shape):
      raise UserError(f"targets must have the shape of tokens {tuple(tokens.shape)}, "
                      f"got {tuple(getattr(targets, 'shape', ()))}")
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    loss = jnp.mean(ce)
    acc = jnp.mean(jnp.argmax(logits, -1) == targets)
    return loss, ({"nats_per_char": loss, "bits_per_char": loss / math.log(2),
                   "accuracy": acc}, carry)

  def step(self, params: dict, carry: tuple, tokens: jax.Array) -> tuple[tuple, jax.Array]:
    """One token per sequence: ``tokens [B] -> (carry, logits [B, V])``.

    Runs :meth:`rnn_zoo.StackedRNN.step`. With one-hot inputs the first
    layer's input projection is a row lookup of ``w_ih`` (equal to
    ``one_hot @ w_ih``, without the [B, V] matmul); an id outside
    ``[0, vocab_size)`` gives NaN logits under jit (an error when concrete).
    """
    self.check_tokens(tokens)
    if self.embed_size or not isinstance(self.cell, ProjectedCell):
      carry, y = self.stack.step(params["stack"], carry, self.embed(params, tokens))
    else:
      cell, p = self.cell, params["stack"]["layer_0"]
      xp = self._rows(p["w_ih"], tokens).astype(cell.dtype)
      xp = xp + base.at_rank(p["b"], xp.ndim)
      carry, y = self.stack.step_projected(params["stack"], carry, xp)
    return carry, base.affine(y, params["head"]["w"], params["head"]["b"])
