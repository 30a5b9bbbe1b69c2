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

from rnn_zoo.cells.cell import Cell
from rnn_zoo.cells.gru import GRU
from rnn_zoo.cells.lstm import LSTM
from rnn_zoo.cells.simple_rnn import SimpleRNN
from rnn_zoo.recurrence import StackedRNN


def _as_stack(model) -> StackedRNN:
  if isinstance(model, StackedRNN):
    return model
  if isinstance(model, Cell):
    return StackedRNN((model,))
  raise ValueError(f"model must be a cell or a StackedRNN, got {model!r}")


def _check_portable(cell: Cell) -> None:
  if isinstance(cell, GRU) and cell.variant != "cudnn":
    raise ValueError(
        f"GRU variant={cell.variant!r} has no PyTorch equivalent; only "
        "variant='cudnn' ports to nn.GRU")
  if not isinstance(cell, (SimpleRNN, LSTM, GRU)):
    raise ValueError(f"no PyTorch equivalent for cell {cell!r}")


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


def to_torch_state_dict(model: Cell | StackedRNN, params) -> dict[str, np.ndarray]:
  """Zoo params -> PyTorch state_dict layout (NumPy arrays).

  ``params`` is ``cell.init(...)`` output for a cell, or a stack's params.
  """
  stack = _as_stack(model)
  if isinstance(model, Cell):
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


def from_torch_state_dict(model: Cell | StackedRNN,
                          state_dict: dict[str, Any]) -> dict:
  """PyTorch state_dict (tensors or arrays) -> zoo params for ``model``."""
  stack = _as_stack(model)
  def get(name):
    if name not in state_dict:
      raise ValueError(
          f"state_dict lacks {name!r}; it has {sorted(state_dict)}")
    v = state_dict[name]
    if hasattr(v, "detach"):  # a torch tensor
      v = v.detach().cpu().numpy()
    return np.asarray(v)

  template = {f"layer_{i}": None for i in range(stack.num_layers)}
  out = {}
  for suffix, cell, _ in _layer_params(stack, template | {
      k: {"forward": None, "backward": None} for k in template}):
    H, G = cell.hidden_size, cell.num_gates
    w_ih, w_hh = get("weight_ih" + suffix), get("weight_hh" + suffix)
    b_ih, b_hh = get("bias_ih" + suffix), get("bias_hh" + suffix)
    if w_hh.shape != (G * H, H):
      raise ValueError(
          f"state_dict['weight_hh{suffix}'] must have shape {(G * H, H)} for "
          f"{type(cell).__name__}({H}), got {w_hh.shape}")
    dt = cell.param_dtype
    p = {"w_ih": jnp.asarray(w_ih.T, dt), "w_hh": jnp.asarray(w_hh.T, dt)}
    if isinstance(cell, GRU):
      p["b"] = jnp.asarray(b_ih + np.concatenate([b_hh[:2 * H], np.zeros(H, b_hh.dtype)]), dt)
      p["b_hn"] = jnp.asarray(b_hh[2 * H:], dt)
    else:
      p["b"] = jnp.asarray(b_ih + b_hh, dt)
    i = int(suffix.split("_l")[1].split("_")[0])
    if stack.bidirectional:
      out.setdefault(f"layer_{i}", {})[
          "backward" if suffix.endswith("_reverse") else "forward"] = p
    else:
      out[f"layer_{i}"] = p
  return out["layer_0"] if isinstance(model, Cell) else out


def make_torch_module(model: Cell | StackedRNN, input_size: int):
  """The ``torch.nn.RNN/LSTM/GRU`` (batch_first) matching ``model``.

  Needs torch (the ``torch`` extra). Dropout is not carried over.
  """
  import torch  # pylint: disable=g-import-not-at-top

  stack = _as_stack(model)
  cell = stack.cells[0]
  for c in stack.cells:
    _check_portable(c)
  if any(c != cell for c in stack.cells):
    raise ValueError("PyTorch modules need the same cell in every layer")
  kw = dict(input_size=input_size, hidden_size=cell.hidden_size,
            num_layers=stack.num_layers, batch_first=True,
            bidirectional=stack.bidirectional)
  if stack.bidirectional and stack.merge != "concat":
    raise ValueError("PyTorch bidirectional modules concatenate; got merge="
                     f"{stack.merge!r}")
  if isinstance(cell, LSTM):
    return torch.nn.LSTM(**kw)
  if isinstance(cell, GRU):
    return torch.nn.GRU(**kw)
  return torch.nn.RNN(nonlinearity=cell.activation, **kw)
