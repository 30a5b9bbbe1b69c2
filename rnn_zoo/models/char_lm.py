"""A character-level language model as pure functions (char-rnn's model).

Tokens -> embedding (or one-hot) -> stacked recurrent layers -> logits over
the vocabulary. ``apply`` runs whole windows through the runner (optionally
with truncated BPTT); ``step`` advances one token, for
:func:`rnn_zoo.decoding.generate`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell
from rnn_zoo.recurrence import StackedRNN, truncated_bptt


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
    >>> params = lm.init(jax.random.key(0))
    >>> logits, carry = lm.apply(params, jnp.zeros((4, 50), jnp.int32))
    >>> logits.shape
    (4, 50, 20)
  """
  vocab_size: int
  cell: Cell
  num_layers: int = 2
  embed_size: int | None = None   # None: one-hot inputs of size vocab_size.
  dropout_rate: float = 0.0

  def __post_init__(self):
    base.check_positive_int("vocab_size", self.vocab_size)
    base.check_positive_int("num_layers", self.num_layers)
    if self.embed_size is not None:
      base.check_positive_int("embed_size", self.embed_size)

  @property
  def stack(self) -> StackedRNN:
    return StackedRNN.of(self.cell, self.num_layers, dropout_rate=self.dropout_rate)

  def init(self, key: jax.Array) -> dict:
    k_emb, k_stack, k_head = jax.random.split(key, 3)
    in_size = self.embed_size or self.vocab_size
    H, V = self.cell.hidden_size, self.vocab_size
    params = {"stack": self.stack.init(k_stack, in_size),
              # Small head: the first loss is close to ln(V) (min-char-rnn's check).
              "head": {"w": 0.01 * jax.random.normal(k_head, (H, V)),
                       "b": jnp.zeros((V,))}}
    if self.embed_size:
      params["embed"] = jax.random.normal(k_emb, (V, self.embed_size)) / math.sqrt(self.embed_size)
    return params

  def initial_carry(self, batch_size: int) -> tuple:
    return self.stack.initial_carry((batch_size,))

  def check_tokens(self, tokens) -> None:
    """JAX clamps out-of-range indices silently: check them when concrete."""
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
    if not isinstance(tokens, jax.core.Tracer):
      arr = np.asarray(tokens)
      if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
        raise ValueError(f"token ids must lie in [0, vocab_size={self.vocab_size}), "
                         f"got min {arr.min()}, max {arr.max()}")

  def embed(self, params, tokens):
    if self.embed_size:
      return jnp.take(params["embed"], tokens, axis=0)
    return jax.nn.one_hot(tokens, self.vocab_size)

  def apply(self, params, tokens, carry=None, *, window: int | None = None,
            key=None, deterministic: bool = True):
    """Logits ``[B, T, V]`` for tokens ``[B, T]`` and the final carry.

    With ``window``, gradients are cut every ``window`` steps (truncated
    BPTT) while the carry flows through.
    """
    self.check_tokens(tokens)
    xs = self.embed(params, tokens)
    if carry is None:
      carry = self.initial_carry(tokens.shape[0])
    use_dropout = self.dropout_rate > 0 and not deterministic
    if use_dropout and key is None:
      raise ValueError(f"key is required for dropout_rate={self.dropout_rate} "
                       "unless deterministic=True")
    k_stack, k_out = jax.random.split(key) if use_dropout else (key, None)
    kw = dict(initial_carry=carry, key=k_stack, deterministic=deterministic)
    if window:
      ys, carry = truncated_bptt(self.stack, params["stack"], xs, window=window, **kw)
    else:
      ys, carry = self.stack.apply(params["stack"], xs, **kw)
    if use_dropout:  # also on the top layer's output, as char-rnn does
      keep = 1.0 - self.dropout_rate
      ys = jnp.where(jax.random.bernoulli(k_out, keep, ys.shape), ys / keep, 0.0)
    return ys @ params["head"]["w"] + params["head"]["b"], carry

  def step(self, params, carry, tokens):
    """One token per sequence: ``tokens [B] -> (carry, logits [B, V])``.

    With one-hot inputs the first layer's input projection is a row lookup
    of ``w_ih`` (equal to ``one_hot @ w_ih``, without the [B, V] matmul).
    """
    new, x = [], None
    for i, cell in enumerate(self.stack.cells):
      p = params["stack"][f"layer_{i}"]
      if i == 0 and not self.embed_size:
        xp = jnp.take(p["w_ih"], tokens, axis=0).astype(cell.dtype) + p["b"]
        c, x = cell.step_projected(p, carry[0], xp)
      else:
        c, x = cell.step(p, carry[i], self.embed(params, tokens) if i == 0 else x)
      new.append(c)
    return tuple(new), x @ params["head"]["w"] + params["head"]["b"]
