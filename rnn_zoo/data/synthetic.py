"""Long-range synthetic tasks, generated inside jit from a key.

Each generator is a pure function ``(key, batch_size, ...) -> dict`` of
arrays, so a batch is a deterministic function of its key (the training loop
uses ``fold_in(data_key, step)``: a resumed run sees the same batches).

References (see shared REFERENCES.md): the adding problem of Le, Jaitly &
Hinton 2015 / Arjovsky et al. 2016 and of Hochreiter & Schmidhuber 1997; the
copy-memory task of Arjovsky et al. 2016 and its variable-gap version of
Henaff et al. 2016.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.errors import UserError

ADDING_VARIANTS = ("le", "hochreiter")
# Loss of a model that predicts the mean target: Var(U1 + U2) = 2/12 for
# U ~ U[0, 1] (Le 2015); Var(0.5 + (X1 + X2)/4) = 2/(3*16) for X ~ U[-1, 1].
ADDING_BASELINE_MSE = {"le": 1.0 / 6.0, "hochreiter": 1.0 / 24.0}

COPY_BLANK = 0
COPY_NUM_SYMBOLS = 8       # symbols 1..8
COPY_DELIMITER = 9
COPY_LENGTH = 10           # symbols to remember
COPY_VOCAB = 10            # blank, 8 symbols, delimiter


# "Solved": the loss below this fraction of the no-memory baseline (for the
# adding problem, 0.05 * 0.167 = 0.0083 MSE; for copy, 5% of 10 ln 8/(T+20)).
SOLVED_FRACTION = 0.05
# "Beats the baseline by a clear margin" (the quick presets' criterion).
BEATS_FRACTION = 0.5


def baseline_loss(task: str, length: int) -> float:
  """The loss of the best model without memory for ``task`` at ``length``."""
  if task == "adding":
    return ADDING_BASELINE_MSE["le"]
  if task == "adding_hochreiter":
    return ADDING_BASELINE_MSE["hochreiter"]
  if task in ("copy", "variable_copy"):
    return copy_baseline_loss(length)
  raise UserError(f"task must be adding, adding_hochreiter, copy or "
                   f"variable_copy, got {task!r}")


def is_solved(task: str, length: int, loss: float) -> bool:
  """Whether ``loss`` is below ``SOLVED_FRACTION`` of the baseline."""
  return loss < SOLVED_FRACTION * baseline_loss(task, length)


def beats_baseline(task: str, length: int, loss: float) -> bool:
  """Whether ``loss`` is below ``BEATS_FRACTION`` of the baseline."""
  return loss < BEATS_FRACTION * baseline_loss(task, length)


def adding_batch(key: jax.Array, batch_size: int, length: int,
                 variant: str = "le") -> dict[str, jax.Array]:
  """The adding problem.

  Returns:
    ``inputs`` ``[B, T, 2]`` float32: channel 0 the values, channel 1 a 1.0 at
    one position drawn uniformly in the first half and one in the second
    half; ``targets`` ``[B]``: the sum of the two marked values (``"le"``,
    values in [0, 1]) or ``0.5 + (X1 + X2) / 4`` (``"hochreiter"``, values in
    [-1, 1]).
  """
  base.check_choice("variant", variant, ADDING_VARIANTS)
  base.check_positive_int("batch_size", batch_size)
  if not isinstance(length, int) or length < 2:
    raise UserError(f"length must be an int >= 2, got {length!r}")
  k_val, k_a, k_b = jax.random.split(key, 3)
  lo, hi = (0.0, 1.0) if variant == "le" else (-1.0, 1.0)
  values = jax.random.uniform(k_val, (batch_size, length), minval=lo, maxval=hi)
  half = length // 2
  first = jax.random.randint(k_a, (batch_size,), 0, half)
  second = jax.random.randint(k_b, (batch_size,), half, length)
  t = jnp.arange(length)[None, :]
  marks = ((t == first[:, None]) | (t == second[:, None])).astype(jnp.float32)
  picked = jnp.sum(values * marks, axis=1)
  targets = picked if variant == "le" else 0.5 + picked / 4.0
  return {"inputs": jnp.stack([values, marks], axis=-1), "targets": targets}


def copy_baseline_loss(delay: int) -> float:
  """Cross-entropy of the best memoryless model: ``10 ln 8 / (T + 20)``."""
  return COPY_LENGTH * math.log(COPY_NUM_SYMBOLS) / (delay + 2 * COPY_LENGTH)


def copy_batch(key: jax.Array, batch_size: int, delay: int,
               variable: bool = False) -> dict[str, jax.Array]:
  """Copy memory (Arjovsky 2016); ``variable=True``: Henaff 2016's variant.

  Length ``T + 20``. Input: 10 symbols from {1..8}, ``T - 1`` blanks, the
  delimiter 9, 10 blanks. Target: ``T + 10`` blanks, then the 10 symbols.
  With ``variable``, the gap g before the delimiter is drawn from 1..T per
  example; the symbols are due right after the delimiter and the sequence is
  padded with blanks to the same length.

  Returns:
    ``inputs`` and ``targets``, int32 ``[B, T + 20]`` token ids in 0..9.
  """
  base.check_positive_int("batch_size", batch_size)
  base.check_positive_int("delay", delay)
  k_sym, k_gap = jax.random.split(key)
  L = delay + 2 * COPY_LENGTH
  symbols = jax.random.randint(k_sym, (batch_size, COPY_LENGTH), 1,
                               COPY_NUM_SYMBOLS + 1)
  if variable:
    gap = jax.random.randint(k_gap, (batch_size,), 1, delay + 1)
  else:
    gap = jnp.full((batch_size,), delay)
  t = jnp.arange(L)[None, :]
  delim_at = COPY_LENGTH + gap[:, None] - 1        # position of the delimiter
  sym_idx = jnp.clip(t, 0, COPY_LENGTH - 1)
  inputs = jnp.where(t < COPY_LENGTH, jnp.take_along_axis(symbols, jnp.broadcast_to(sym_idx, (batch_size, L)), 1), 0)
  inputs = jnp.where(t == delim_at, COPY_DELIMITER, inputs)
  out_pos = t - delim_at - 1                         # 0..9 while recalling
  recall = (out_pos >= 0) & (out_pos < COPY_LENGTH)
  targets = jnp.where(
      recall, jnp.take_along_axis(symbols, jnp.clip(out_pos, 0, COPY_LENGTH - 1), 1), 0)
  return {"inputs": inputs.astype(jnp.int32), "targets": targets.astype(jnp.int32)}
