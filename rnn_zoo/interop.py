"""Params to and from PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``.

PyTorch keeps ``weight_ih_l{k}`` ``[G*H, I]``, ``weight_hh_l{k}`` ``[G*H, H]``,
``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``[G*H]`` (``_reverse`` for the backward
direction), with the same gate order as the zoo (LSTM i,f,g,o; GRU r,z,n).
The zoo stores ``x @ w_ih`` weights (transposed) and one summed bias, so:

* ``to_torch_state_dict`` writes ``bias_ih = b`` and ``bias_hh = 0`` (for the
  GRU, ``bias_hh = [0, 0, b_hn]``) — the same function as the zoo's.
* ``from_torch_state_dict`` sums the biases (GRU: all but the n part of
  ``bias_hh``, which becomes ``b_hn``).

State dicts here are plain NumPy arrays, so torch is never needed to convert;
:func:`make_torch_module` (which imports torch) builds the matching module.

Example:
  >>> import jax, rnn_zoo as rz
  >>> stack = rz.StackedRNN.of(rz.LSTM(8), num_layers=2, bidirectional=True)
  >>> params = stack.init(jax.random.key(0), input_size=3)
  >>> sd = rz.interop.to_torch_state_dict(stack, params)
  >>> sd["weight_ih_l1_reverse"].shape
  (32, 16)
  >>> back = rz.interop.from_torch_state_dict(stack, sd)
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.cells.gru import GRU, GRUCho
from rnn_zoo.cells.lstm import LSTM
from rnn_zoo.cells.simple_rnn import SimpleRNN
from rnn_zoo.runner import StackedRNN
from rnn_zoo.errors import UserError


def _as_stack(model) -> StackedRNN:
  if isinstance(model, StackedRNN):
    return model
  if isinstance(model, Cell):
    return StackedRNN((model,))
  raise UserError(f"model must be a cell or a StackedRNN, got {model!r}")


def _check_portable(cell: Cell) -> None:
  if isinstance(cell, GRUCho):
    raise UserError(
        f"GRU variant={cell.variant!r} has no PyTorch equivalent; only "
        "variant='cudnn' ports to nn.GRU")
  if not isinstance(cell, (SimpleRNN, LSTM, GRU)):
    raise UserError(f"no PyTorch equivalent for cell {cell!r}")


def _layer_params(stack: StackedRNN, params):
  """Yields (torch suffix, cell, zoo params) for every layer and direction."""
  for i, cell in enumerate(stack.cells):
    _check_portable(cell)
    p = params[f"layer_{i}"]
    if stack.bidirectional:
      yield f"_l{i}", cell, p["forward"]
      yield f"_l{i}_reverse", cell, p["backward"]
    else:
      yield f"_l{i}", cell, p


def to_torch_state_dict(model: Cell | StackedRNN, params: Params) -> dict[str, np.ndarray]:
  """Zoo params -> PyTorch state_dict layout (NumPy arrays).

  ``params`` is ``cell.init(...)`` output for a cell, or a stack's params.
  """
  stack = _as_stack(model)
  if not isinstance(model, StackedRNN):
    params = {"layer_0": params}
  out = {}
  for suffix, cell, p in _layer_params(stack, params):
    cell.check_params(p)
    b = np.asarray(p["b"], np.float32)
    out["weight_ih" + suffix] = np.asarray(p["w_ih"]).T.copy()
    out["weight_hh" + suffix] = np.asarray(p["w_hh"]).T.copy()
    out["bias_ih" + suffix] = b.copy()
    b_hh = np.zeros_like(b)
    if isinstance(cell, GRU):
      b_hh[2 * cell.hidden_size:] = np.asarray(p["b_hn"])
    out["bias_hh" + suffix] = b_hh
  return out


def _expected_shapes(stack: StackedRNN, input_size: int) -> dict[str, tuple]:
  """PyTorch's key -> shape for ``stack`` on inputs of ``input_size``."""
  shapes: dict[str, tuple] = {}
  for i, (cell, size) in enumerate(zip(stack.cells, stack._layer_input_sizes(input_size))):  # pylint: disable=protected-access
    _check_portable(cell)
    G, H = cell.num_gates, cell.hidden_size
    for suffix in ([f"_l{i}", f"_l{i}_reverse"] if stack.bidirectional else [f"_l{i}"]):
      shapes["weight_ih" + suffix] = (G * H, size)
      shapes["weight_hh" + suffix] = (G * H, H)
      shapes["bias_ih" + suffix] = (G * H,)
      shapes["bias_hh" + suffix] = (G * H,)
  return shapes


def from_torch_state_dict(model: Cell | StackedRNN,
                          state_dict: dict[str, Any]) -> dict:
  """PyTorch state_dict (tensors or arrays) -> zoo params for ``model``.

  Strict, like ``torch.nn.Module.load_state_dict(strict=True)``: a missing or
  unexpected key, or any array whose shape is not the one ``model`` needs
  (a transposed weight, another hidden size, a layer too many), raises a
  ValueError (:class:`rnn_zoo.UserError`) naming it. The input size is read
  from ``weight_ih_l0``.
  """
  stack = _as_stack(model)
  if not hasattr(state_dict, "keys"):
    raise UserError(f"state_dict must be a mapping, got {type(state_dict).__name__}")

  def get(name):
    v = state_dict[name]
    if hasattr(v, "detach"):  # a torch tensor
      v = v.detach().cpu().numpy()
    return np.asarray(v)

  if "weight_ih_l0" not in state_dict:
    raise UserError(f"state_dict lacks 'weight_ih_l0'; it has {sorted(state_dict)}")
  first = get("weight_ih_l0")
  if first.ndim != 2:
    raise UserError(f"state_dict['weight_ih_l0'] must be 2-D [G*H, input_size], "
                    f"got shape {first.shape}")
  expected = _expected_shapes(stack, int(first.shape[1]))
  missing = sorted(set(expected) - set(state_dict))
  unexpected = sorted(set(state_dict) - set(expected))
  if missing or unexpected:
    raise UserError(
        f"state_dict does not match {_describe(stack)}: missing keys {missing}, "
        f"unexpected keys {unexpected}")
  arrays = {k: get(k) for k in expected}
  for k, shape in expected.items():
    if arrays[k].shape != shape:
      raise UserError(
          f"state_dict[{k!r}] must have shape {shape} for {_describe(stack)}, "
          f"got {arrays[k].shape}")

  out: dict[str, Any] = {}
  for i, cell in enumerate(stack.cells):
    H, dt = cell.hidden_size, cell.param_dtype
    for suffix, direction in ([(f"_l{i}", "forward"), (f"_l{i}_reverse", "backward")]
                              if stack.bidirectional else [(f"_l{i}", None)]):
      b_ih, b_hh = arrays["bias_ih" + suffix], arrays["bias_hh" + suffix]
      p = {"w_ih": jnp.asarray(arrays["weight_ih" + suffix].T, dt),
           "w_hh": jnp.asarray(arrays["weight_hh" + suffix].T, dt)}
      if isinstance(cell, GRU):
        p["b"] = jnp.asarray(b_ih + np.concatenate([b_hh[:2 * H], np.zeros(H, b_hh.dtype)]), dt)
        p["b_hn"] = jnp.asarray(b_hh[2 * H:], dt)
      else:
        p["b"] = jnp.asarray(b_ih + b_hh, dt)
      if direction is None:
        out[f"layer_{i}"] = p
      else:
        out.setdefault(f"layer_{i}", {})[direction] = p
  return out["layer_0"] if not isinstance(model, StackedRNN) else out


def _describe(stack: StackedRNN) -> str:
  cell = stack.cells[0]
  return (f"{stack.num_layers} layer(s) of {type(cell).__name__}({cell.hidden_size})"
          + (", bidirectional" if stack.bidirectional else ""))


def make_torch_module(model: Cell | StackedRNN, input_size: int) -> Any:
  """The ``torch.nn.RNN/LSTM/GRU`` (batch_first) matching ``model``.

  Needs torch (the ``torch`` extra). Dropout is not carried over.
  """
  import torch  # pylint: disable=g-import-not-at-top

  stack = _as_stack(model)
  cell = stack.cells[0]
  for c in stack.cells:
    _check_portable(c)
  if any(c != cell for c in stack.cells):
    raise UserError("PyTorch modules need the same cell in every layer")
  kw = dict(input_size=input_size, hidden_size=cell.hidden_size,
            num_layers=stack.num_layers, batch_first=True,
            bidirectional=stack.bidirectional)
  if stack.bidirectional and stack.merge != "concat":
    raise UserError("PyTorch bidirectional modules concatenate; got merge="
                     f"{stack.merge!r}")
  if isinstance(cell, LSTM):
    return torch.nn.LSTM(**kw)
  if isinstance(cell, GRU):
    return torch.nn.GRU(**kw)
  return torch.nn.RNN(nonlinearity=cell.activation, **kw)
