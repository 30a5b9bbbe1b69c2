"""The zoo's functional models (:mod:`rnn_zoo.models`) as Flax NNX modules.

:class:`Model` holds any model that follows the zoo's protocol
(:mod:`rnn_zoo.models.protocol`: ``init(*, key)``, ``apply(params, ...,
key, deterministic)``, ``loss``) together with its params as
:class:`flax.nnx.Param` s, and forwards ``__call__`` to ``apply`` and
:meth:`Model.loss` to ``loss`` with those params: the same numbers, bit for
bit, as the functional calls. :class:`CharLM`, :class:`Captioner` and
:class:`VQA` build the model from its fields.
"""

from __future__ import annotations

import inspect
from typing import Any

from flax import nnx

from rnn_zoo import checks
from rnn_zoo.errors import UserError
from rnn_zoo.models import Captioner as FunctionalCaptioner
from rnn_zoo.models import CharLM as FunctionalCharLM
from rnn_zoo.models import VQA as FunctionalVQA
from rnn_zoo.models.protocol import Model as ModelProtocol
from rnn_zoo.nnx.params import draw_key, rng_stream, to_arrays, to_variables


def _accepts(fn, name: str) -> bool:
  params = inspect.signature(fn).parameters
  return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Model(nnx.Module):
  """A functional zoo model and its params as one NNX module.

  Args:
    model: a model following the zoo's protocol (``rz.models.CharLM``,
      ``Captioner``, ``VQA`` or your own).
    params: its functional params to hold; None: ``model.init(key=...)``
      from ``rngs.params()``.
    deterministic: the default of every call's (None: stochastic exactly
      when the module holds an RNG stream or the call passes ``rngs``;
      ``eval()`` sets True, ``train()`` False).
    rngs: :class:`flax.nnx.Rngs`: ``params`` initializes, ``dropout`` (else
      ``default``) is the stream of dropout and sampling.

  ``module(*inputs)`` is ``model.apply(params, *inputs, key=..., deterministic=...)``,
  ``module.loss(*batch)`` is ``model.loss(params, *batch, key=...)``, and
  ``module.call("step", carry, tokens)`` calls any other method that takes
  the params first (``step``, ``initial_carry``, ``attention_maps``...).
  """

  def __init__(self, model: Any, *, params: Any = None,
               deterministic: bool | None = None, rngs: nnx.Rngs | None = None):
    if not isinstance(model, ModelProtocol):
      raise UserError(f"model must follow the zoo's model protocol (init, apply, "
                      f"loss), got {type(model).__name__}")
    checks.optional_bool("deterministic", deterministic)
    if params is None:
      if rngs is None:
        raise UserError("rngs is required to initialize the params (or pass params=)")
      params = model.init(key=rngs.params())
    self.model = model
    self.deterministic = deterministic
    self.params = to_variables(params)
    self.rngs = rng_stream(rngs)

  @classmethod
  def from_params(cls, model: Any, params: Any, **kwargs: Any) -> "Model":
    """The module holding ``params`` for ``model`` (``rngs`` only for
    dropout and sampling)."""
    return cls(model, params=params, **kwargs)

  def to_params(self) -> Any:
    """The functional params: ``model.apply(m.to_params(), ...)`` equals ``m(...)``."""
    return to_arrays(self.params)

  def _randomness(self, fn, deterministic, rngs) -> dict:
    deterministic = self.deterministic if deterministic is None else deterministic
    checks.optional_bool("deterministic", deterministic)
    kwargs: dict[str, Any] = {}
    if deterministic is not None and _accepts(fn, "deterministic"):
      kwargs["deterministic"] = deterministic
    if not deterministic and _accepts(fn, "key"):
      key = draw_key(rngs, self.rngs)
      if key is not None:
        kwargs["key"] = key
    return kwargs

  def __call__(self, *inputs: Any, deterministic: bool | None = None, rngs: Any = None,
               **kwargs: Any) -> Any:
    """``model.apply(params, *inputs, **kwargs)`` with this module's
    randomness (see the class doc)."""
    fn = self.model.apply
    return fn(self.to_params(), *inputs, **self._randomness(fn, deterministic, rngs),
              **kwargs)

  def loss(self, *batch: Any, deterministic: bool | None = None, rngs: Any = None,
           **kwargs: Any) -> tuple[Any, Any]:
    """``model.loss(params, *batch, **kwargs)``: ``(scalar, aux)``, for
    ``nnx.value_and_grad(lambda m: m.loss(...), has_aux=True)``."""
    fn = self.model.loss
    return fn(self.to_params(), *batch, **self._randomness(fn, deterministic, rngs),
              **kwargs)

  def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
    """``getattr(model, method)(params, *args, **kwargs)``."""
    checks.choice("method", method, [m for m in dir(self.model)
                                     if not m.startswith("_") and callable(getattr(self.model, m))])
    return getattr(self.model, method)(self.to_params(), *args, **kwargs)


class CharLM(Model):
  """:class:`rnn_zoo.models.CharLM` as an NNX module: the keyword arguments
  are its fields.

  Example:
    >>> import jax.numpy as jnp, rnn_zoo as rz
    >>> from flax import nnx
    >>> lm = rz.nnx.CharLM(vocab_size=20, cell=rz.LSTM(32), rngs=nnx.Rngs(0))
    >>> logits, carry = lm(jnp.zeros((4, 50), jnp.int32))
    >>> logits.shape
    (4, 50, 20)
  """

  def __init__(self, *, rngs: nnx.Rngs | None = None, params: Any = None,
               deterministic: bool | None = None, **fields: Any) -> None:
    super().__init__(FunctionalCharLM(**fields), params=params,
                     deterministic=deterministic, rngs=rngs)


class Captioner(Model):
  """:class:`rnn_zoo.models.Captioner` (the Show-and-Tell decoder, or Show,
  Attend and Tell's with ``mode="soft"``/``"hard"``) as an NNX module: the
  keyword arguments are its fields."""

  def __init__(self, *, rngs: nnx.Rngs | None = None, params: Any = None,
               deterministic: bool | None = None, **fields: Any) -> None:
    super().__init__(FunctionalCaptioner(**fields), params=params,
                     deterministic=deterministic, rngs=rngs)


class VQA(Model):
  """:class:`rnn_zoo.models.VQA` as an NNX module: the keyword arguments are
  its fields."""

  def __init__(self, *, rngs: nnx.Rngs | None = None, params: Any = None,
               deterministic: bool | None = None, **fields: Any) -> None:
    super().__init__(FunctionalVQA(**fields), params=params,
                     deterministic=deterministic, rngs=rngs)

