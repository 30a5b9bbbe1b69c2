"""The bridge between the zoo's functional params (plain dicts of arrays) and
Flax NNX state: one :class:`flax.nnx.Param` per array, in the same tree.

Both directions are exact (the arrays themselves, no copy or cast), so a
module made from functional params computes bit for bit what the functional
call computes with them.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from rnn_zoo.errors import UserError


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def to_variables(params: Any, name: str = "params") -> Any:
  """``params`` (a pytree of arrays) with every array wrapped in an
  :class:`flax.nnx.Param`, marked as data for an NNX module attribute."""
  leaves = jax.tree.leaves(params, is_leaf=_is_variable)
  if not leaves:
    raise UserError(f"{name} must hold at least one array, got {params!r}")
  for leaf in leaves:
    if _is_variable(leaf) or not hasattr(leaf, "shape"):
      raise UserError(f"{name} must be a tree of arrays (functional params), "
                      f"found a {type(leaf).__name__}")
  return nnx.data(jax.tree.map(nnx.Param, params))


def to_arrays(variables: Any) -> Any:
  """The functional params held by a tree of :class:`flax.nnx.Variable`, or
  by an :class:`flax.nnx.State` (e.g. ``grads.params`` of ``nnx.grad``):
  plain dicts of arrays."""
  if isinstance(variables, nnx.State):
    return nnx.to_pure_dict(variables)
  return jax.tree.map(lambda v: v[...], variables, is_leaf=_is_variable)


def rng_stream(rngs: nnx.Rngs | nnx.RngStream | None, stream: str = "dropout") -> Any:
  """A private fork of ``rngs``' ``stream`` (its ``"default"`` stream when
  it has none, as :class:`flax.nnx.Dropout` does), or None for no rngs."""
  if rngs is None:
    return nnx.data(None)
  if isinstance(rngs, nnx.Rngs):
    return rngs[stream].fork()
  if isinstance(rngs, nnx.RngStream):
    return rngs.fork()
  raise UserError(f"rngs must be an nnx.Rngs, an nnx.RngStream or None, got "
                  f"{type(rngs).__name__}")


def draw_key(call_rngs: Any, held: Any) -> jax.Array | None:
  """A key from the call's ``rngs`` (an Rngs, RngStream or key) if given,
  else from the module's ``held`` stream; None when neither exists."""
  if call_rngs is None:
    return None if held is None else held()
  if isinstance(call_rngs, nnx.Rngs):
    return call_rngs["dropout"]()
  if isinstance(call_rngs, nnx.RngStream):
    return call_rngs()
  if isinstance(call_rngs, jax.Array):
    return call_rngs
  raise UserError(f"rngs must be an nnx.Rngs, an nnx.RngStream, a key or None, "
                  f"got {type(call_rngs).__name__}")
