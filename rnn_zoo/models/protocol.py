"""The protocol every functional model of the zoo follows.

A model (:class:`~rnn_zoo.models.CharLM`, :class:`~rnn_zoo.models.Captioner`,
:class:`~rnn_zoo.models.VQA`) is a frozen dataclass of hyperparameters; its
parameters are a plain dict, made and read by pure methods:

* ``params = model.init(*, key)``: the key keyword-only (as Equinox does),
  so a call reads the same for every model; submodules are built once per
  model (``functools.cached_property``).
* ``model.apply(params, *inputs, key=None, deterministic=None)``: the
  forward pass. Randomness follows one rule for the whole zoo
  (:func:`rnn_zoo.checks.use_dropout`): ``deterministic=None``, the default
  everywhere, means stochastic exactly when a ``key`` is given; True: never;
  False: always, and the key is then required. A model with no randomness
  accepts both and checks their types.
* ``loss, aux = model.loss(params, *batch, key=None, ...)``: a scalar and
  ``aux``, the metrics dict (for :func:`jax.value_and_grad` with
  ``has_aux``), or ``(metrics, carry)`` for a model that carries its state
  across batches (:class:`~rnn_zoo.models.CharLM`).
* Token ids are guarded one way (:func:`rnn_zoo.checks.take_rows`): an
  error naming the argument when the ids are concrete, NaN rows under
  ``jit``, so that a bad id poisons the loss instead of reading a clamped row.

Cells and stacks (``init(key, input_size)``, ``initial_carry``, ``step``)
follow the cell protocol of :class:`rnn_zoo.Cell` instead; the Flax
modules (:class:`~rnn_zoo.models.SequenceModel`, :class:`rnn_zoo.nn.RNN`)
follow Flax's, with the same ``deterministic=None`` rule over the
``"dropout"`` RNG stream.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Protocol, runtime_checkable

import jax

from rnn_zoo import checks
from rnn_zoo.errors import UserError


@runtime_checkable
class Model(Protocol):
  """What the training loop and the decoders may rely on (see the module doc)."""

  def init(self, *, key: jax.Array) -> dict: ...

  def apply(self, params: dict, *inputs: Any, key: jax.Array | None = None,
            deterministic: bool | None = None) -> Any: ...

  def loss(self, params: dict, *batch: Any, key: jax.Array | None = None
           ) -> tuple[jax.Array, Any]: ...


def keyword_key(init: Callable) -> Callable:
  """Makes ``init(self, *, key)`` also accept the key positionally, with a
  DeprecationWarning (the zoo's models took ``init(key)`` until this
  release)."""

  @functools.wraps(init)
  def wrapper(self, *args, key=None):
    if args:
      if len(args) > 1 or key is not None:
        raise UserError(f"{type(self).__name__}.init takes one keyword argument, "
                        f"key=; got {len(args)} positional argument(s)"
                        + (" and key=" if key is not None else ""))
      warnings.warn(f"{type(self).__name__}.init(key) is deprecated and will be "
                    f"removed in the next release; call "
                    f"{type(self).__name__}.init(key=key)",
                    DeprecationWarning, stacklevel=2)
      key = args[0]
    if key is None:
      raise UserError(f"{type(self).__name__}.init needs key=, a jax.random.key")
    return init(self, key=key)

  return wrapper


def check_no_randomness(key: jax.Array | None, deterministic: bool | None) -> None:
  """For a model without randomness: the protocol's ``key`` and
  ``deterministic`` are accepted; a wrong type is still an error."""
  checks.use_dropout(0.0, deterministic, has_key=key is not None)


__all__ = ["Model", "keyword_key", "check_no_randomness"]
