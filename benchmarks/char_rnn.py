r"""char-rnn training throughput: rnn_zoo's train step beside PyTorch's.

Times one full training step of the char_rnn experiment — the loop's own
jitted step (stateful carry, one-hot inputs, 2-layer LSTM, softmax
cross-entropy, clip by global norm, Adam) — and the same step written in
PyTorch (``nn.LSTM`` with the carry detached between steps,
``clip_grad_norm_``, ``torch.optim.Adam``) on the same model size and batch,
interleaved in one process. Reports characters/s and the ratio, and writes
``report.md`` + ``results.json``. ``--cells=lstm,mingru`` also times the same
step with other cells of the zoo (``config.cell``; PyTorch has none of the
linear ones), in the same rounds, with the ratio of the zoo's LSTM time to
theirs: the steps an equal wall-clock budget buys.

Usage::

  python -m benchmarks.char_rnn                       # ~1 min on 2 CPU cores
  python -m benchmarks.char_rnn --shapes=64x50x128,50x50x128 --rounds=15
  python -m benchmarks.char_rnn --shapes=64x50x128 --cells=lstm,mingru,lru --no_torch
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import common
from experiments.char_rnn import workload as char_rnn_workload
from rnn_zoo.training import loop
from rnn_zoo.training import optim
from experiments.char_rnn import config as cr_config

_SHAPES = flags.DEFINE_list("shapes", ["64x50x128", "50x50x128", "32x100x256"],
                            "batch x seq_len x hidden of a 2-layer LSTM.")
_ROUNDS = flags.DEFINE_integer("rounds", 9, "Interleaved timed rounds (medians).")
_STEPS = flags.DEFINE_integer("steps", 5, "Train steps per timed call.")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch anchor.")
_CELLS = flags.DEFINE_list("cells", ["lstm"], "Zoo cells to time (config.cell); "
                           "the PyTorch anchor is an LSTM.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/char_rnn/<timestamp>).")


def parse_shape(text: str) -> tuple[int, int, int]:
  try:
    B, T, H = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise ValueError(f"--shapes entries must be BxTxH, got {text!r}") from None
  if min(B, T, H) <= 0:
    raise ValueError(f"--shapes entries must be positive, got {text!r}")
  return B, T, H


def make_rnn_zoo(config, steps):
  """The experiment's own train step, on its own batches."""
  w = char_rnn_workload.char_rnn(config)
  optimizer = optim.make_optimizer(config)
  # Jitted: one buffer per leaf, since the train step donates them.
  state = jax.jit(lambda: loop.initial_state(
      w, optimizer, config, jax.random.key(0), jax.random.key(1)))()
  train_step = jax.jit(loop.make_train_step(w, optimizer, config), donate_argnums=0)
  batches = [jax.block_until_ready(w.train_batch(None, s)) for s in range(steps)]
  box = [state]

  def run():
    s = box[0]
    for b in batches:
      s, m = train_step(s, b)
    jax.block_until_ready(m["loss"])
    box[0] = s
  return run, w.info["vocab_size"], batches


def _with_cell(config, cell):
  c = config.copy_and_resolve_references()
  c.cell = cell
  return c


def make_torch(config, vocab_size, batches):
  import torch  # pylint: disable=g-import-not-at-top
  B, H, L = config.batch_size, config.hidden_size, config.num_layers
  torch.manual_seed(0)
  lstm = torch.nn.LSTM(vocab_size, H, L, batch_first=True)
  head = torch.nn.Linear(H, vocab_size)
  params = list(lstm.parameters()) + list(head.parameters())
  opt = torch.optim.Adam(params, lr=config.learning_rate)
  data = [(torch.from_numpy(np.asarray(b["inputs"]).astype(np.int64)),
           torch.from_numpy(np.asarray(b["targets"]).astype(np.int64))) for b in batches]
  carry = [(torch.zeros(L, B, H), torch.zeros(L, B, H))]

  def run():
    h = carry[0]
    for x, y in data:
      opt.zero_grad(set_to_none=True)
      out, h = lstm(torch.nn.functional.one_hot(x, vocab_size).float(), h)
      h = tuple(t.detach() for t in h)   # truncated BPTT across windows
      loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, vocab_size),
                                               y.reshape(-1))
      loss.backward()
      torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
      opt.step()
    carry[0] = h
  return run


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    shapes = [parse_shape(s) for s in _SHAPES.value]
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _ROUNDS.value <= 0 or _STEPS.value <= 0:
    sys.exit(f"error: --rounds and --steps must be positive, got {_ROUNDS.value}, "
             f"{_STEPS.value}")
  from rnn_zoo import CELL_NAMES  # pylint: disable=g-import-not-at-top
  bad = [c for c in _CELLS.value if c not in CELL_NAMES]
  if bad or not _CELLS.value:
    sys.exit(f"error: --cells must name cells from {list(CELL_NAMES)}, got {_CELLS.value}")
  use_torch = not _NO_TORCH.value
  if use_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top
      torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
      print("torch is not installed: timing rnn_zoo alone (pip install -e '.[torch]')")
      use_torch = False
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "char_rnn", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  rows = []
  n = _STEPS.value
  for B, T, H in shapes:
    config = cr_config.get_config("")
    config.update({"batch_size": B, "seq_len": T, "hidden_size": H})
    fns = {}
    for cell in _CELLS.value:
      name = "rnn_zoo" if cell == "lstm" else f"rnn_zoo[{cell}]"
      fns[name], V, batches = make_rnn_zoo(_with_cell(config, cell), n)
    if use_torch:
      fns["torch"] = make_torch(config, V, batches)
    times = common.time_round_robin(fns, _ROUNDS.value)
    med = {k: float(np.median(v)) / n for k, v in times.items()}
    for impl, t in med.items():
      row = {"batch": B, "seq_len": T, "hidden": H, "layers": config.num_layers,
             "vocab": V, "impl": impl, "ms_per_step": t * 1e3,
             "chars_per_s": B * T / t,
             "x_anchor": (med["torch"] / med["rnn_zoo"]
                          if impl == "torch" and "rnn_zoo" in med else None),
             "x_zoo_lstm": (med["rnn_zoo"] / t if impl.startswith("rnn_zoo[")
                            and "rnn_zoo" in med else None)}
      rows.append(row)
      print(f"{B}x{T} H={H} {impl:8s} {row['ms_per_step']:8.2f} ms/step "
            f"{row['chars_per_s']:>10,.0f} chars/s"
            + (f"  rnn_zoo is {row['x_anchor']:.2f}x torch" if row["x_anchor"] else "")
            + (f"  {row['x_zoo_lstm']:.2f}x the zoo's LSTM" if row["x_zoo_lstm"] else ""),
            flush=True)
  results = {"command": "python -m benchmarks.char_rnn " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  env = results["environment"]
  lines = ["# char-rnn training throughput", "",
           f"Command: `{results['command']}`  ", f"Date: {results['date']}  ",
           f"Device: {env['device_kind']} ({env['backend']}, {env['cpu_count']} cores), "
           f"jax {env['jax']}, torch {env['torch']}, XLA_FLAGS=`{env['xla_flags']}`", "",
           "One training step: forward + backward + clip + Adam, one-hot inputs, "
           "2-layer LSTM (`rnn_zoo[cell]`: the zoo's other cells), hidden state "
           f"carried across windows. Medians of {_ROUNDS.value} interleaved rounds "
           f"of {n} steps. `x torch` = torch time / rnn_zoo time (> 1: rnn_zoo is "
           "faster); `x zoo LSTM` = the zoo's LSTM time / this cell's.", "",
           "| batch × seq × hidden | vocab | impl | ms/step | chars/s | x torch | x zoo LSTM |",
           "|---|---:|---|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['batch']}×{r['seq_len']}×{r['hidden']} | {r['vocab']} | "
                 f"{r['impl']} | {r['ms_per_step']:.2f} | {r['chars_per_s']:,.0f} | "
                 + (f"{r['x_anchor']:.2f}" if r["x_anchor"] else "") + " | "
                 + (f"{r['x_zoo_lstm']:.2f}" if r.get("x_zoo_lstm") else "") + " |")
  common.write_report(out, lines)


if __name__ == "__main__":
  common.run_main(main)
