r"""Forward+backward throughput of the zoo's LSTM and GRU beside the anchors.

For each cell and shape (batch, time, input, hidden) it times one jitted
forward+backward pass (gradients of ``sum(ys * r)`` with respect to the
params and the inputs) of:

* ``rnn_zoo``: :func:`rnn_zoo.unroll` (fused backward, the default);
* ``rnn_zoo[autodiff]``: the same runner with ``fused=False`` (plain
  autodiff of ``lax.scan``) — the ablation;
* ``flax``: ``nn.RNN(nn.OptimizedLSTMCell)`` / ``nn.RNN(nn.GRUCell)``;
* ``torch``: ``nn.LSTM`` / ``nn.GRU`` (when torch is installed);

interleaved round by round (so drift hits all alike), reporting medians,
tokens/s, the ratio of every anchor's time to ours, and the ratio of each
time to the FLOP floor ``3 * 2*B*T*(I+H)*G*H / R`` where R is this machine's
float32 GEMM rate measured in the same run.

Usage::

  python -m benchmarks.throughput                  # all shapes, ~3 min on 2 cores
  python -m benchmarks.throughput --preset=quick   # fewer rounds (make demo)
  python -m benchmarks.throughput --cells=lstm --shapes=32x128x128x256

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/throughput/<timestamp>``).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import rnn_zoo as rz
from rnn_zoo import xla_config

from benchmarks import common

PRESETS = {
    # rounds: timed repetitions of every implementation (after 2 warm-ups).
    "quick": {"rounds": 3, "shapes": "32x128x128x256,16x256x32x64,64x64x256x512"},
    "full": {"rounds": 9, "shapes": "32x128x128x256,16x256x32x64,64x64x256x512"},
}

_PRESET = flags.DEFINE_enum("preset", "full", sorted(PRESETS), "Rounds and shapes.")
_CELLS = flags.DEFINE_list("cells", ["lstm", "gru"], "Cells: lstm, gru.")
_SHAPES = flags.DEFINE_string(
    "shapes", None, "Comma-separated BxTxIxH shapes (default: the preset's).")
_ROUNDS = flags.DEFINE_integer("rounds", None, "Timed rounds (default: preset's).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/throughput/<timestamp>).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch anchor.")
_XLA_DEFAULTS = flags.DEFINE_bool(
    "xla_defaults", False,
    "Keep XLA's default CPU flags instead of rnn_zoo.xla_config's "
    "recommended ones (applied to every implementation alike).")

GATES = {"lstm": 4, "gru": 3}


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
  shapes = []
  for item in text.split(","):
    parts = item.strip().lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
      raise ValueError(f"--shapes entries must be BxTxIxH positive ints, got {item!r}")
    shapes.append(tuple(int(p) for p in parts))
  return shapes


def gemm_rate(n: int = 2048, rounds: int = 7) -> float:
  """This machine's float32 GEMM rate (FLOP/s) through XLA, median of rounds."""
  a = jax.random.normal(jax.random.key(0), (n, n))
  mm = jax.jit(lambda a: a @ a)
  mm(a).block_until_ready()
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n ** 3 / float(np.median(times))


def make_zoo(cell_name, B, T, I, H, fused):
  cell = rz.LSTM(H) if cell_name == "lstm" else rz.GRU(H)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))

  @jax.jit
  def step(params, xs):
    return jax.grad(lambda p, x: jnp.sum(
        rz.unroll(cell, p, x, fused=fused)[0] * r), (0, 1))(params, xs)
  return lambda: jax.block_until_ready(step(params, xs))


def make_flax(cell_name, B, T, I, H):
  cell = nn.OptimizedLSTMCell(H) if cell_name == "lstm" else nn.GRUCell(H)
  model = nn.RNN(cell)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))
  variables = model.init(jax.random.key(0), xs)

  @jax.jit
  def step(variables, xs):
    return jax.grad(lambda v, x: jnp.sum(model.apply(v, x) * r), (0, 1))(variables, xs)
  return lambda: jax.block_until_ready(step(variables, xs))


def make_torch(cell_name, B, T, I, H):
  import torch  # pylint: disable=g-import-not-at-top
  module = (torch.nn.LSTM if cell_name == "lstm" else torch.nn.GRU)(
      I, H, batch_first=True)
  xs = torch.randn(B, T, I, requires_grad=True)
  r = torch.randn(B, T, H)

  def step():
    module.zero_grad(set_to_none=True)
    xs.grad = None
    out, _ = module(xs)
    (out * r).sum().backward()
  return step


def report_markdown(results: dict) -> str:
  env = results["environment"]
  lines = [
      "# Throughput: forward + backward", "",
      f"Command: `{results['command']}`  ",
      f"Date: {results['date']}  ",
      f"Device: {env['device_kind']} ({env['backend']}, {env['cpu_count']} cores), "
      f"jax {env['jax']}, torch {env['torch']}, XLA_FLAGS=`{env['xla_flags']}`  ",
      f"Measured float32 GEMM rate: {results['gemm_gflops']:.1f} GFLOP/s "
      f"(before) / {results['gemm_gflops_after']:.1f} (after)", "",
      "Times are medians of interleaved rounds of one jitted forward+backward "
      "(grads of params and inputs). `x anchor` = anchor time / rnn_zoo time "
      "(> 1: rnn_zoo is faster). `x floor` = time / FLOP floor.", "",
      "| cell | B×T×I×H | impl | ms | tokens/s | x anchor | x floor |",
      "|---|---|---|---:|---:|---:|---:|",
  ]
  for row in results["rows"]:
    ours = row["impls"]["rnn_zoo"]["ms"]
    for name, m in row["impls"].items():
      ratio = "" if name == "rnn_zoo" else f"{m['ms'] / ours:.2f}"
      lines.append(
          f"| {row['cell']} | {'×'.join(map(str, row['shape']))} | {name} | "
          f"{m['ms']:.1f} | {m['tokens_per_s']:,.0f} | {ratio} | "
          f"{m['ms'] / row['floor_ms']:.2f} |")
  lines += ["", "FLOP floor per shape: " + ", ".join(
      f"{r['cell']} {'×'.join(map(str, r['shape']))}: {r['floor_ms']:.1f} ms"
      for r in results["rows"]), ""]
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  preset = PRESETS[_PRESET.value]
  try:
    shapes = parse_shapes(_SHAPES.value or preset["shapes"])
  except ValueError as e:
    sys.exit(f"error: {e}")
  for c in _CELLS.value:
    if c not in GATES:
      sys.exit(f"error: --cells must name lstm or gru, got {c!r}")
  rounds = _ROUNDS.value or preset["rounds"]
  if not _XLA_DEFAULTS.value:
    xla_config.use_recommended_cpu_flags()
  have_torch = False
  if not _NO_TORCH.value:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
      have_torch = True
    except ImportError:
      print("torch not installed: skipping the PyTorch anchor "
            "(pip install -e '.[torch]')")
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "throughput", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)

  rate = gemm_rate()
  print(f"float32 GEMM rate: {rate / 1e9:.1f} GFLOP/s")
  rows = []
  for cell_name in _CELLS.value:
    for (B, T, I, H) in shapes:
      fns = {"rnn_zoo": make_zoo(cell_name, B, T, I, H, fused=None),
             "rnn_zoo[autodiff]": make_zoo(cell_name, B, T, I, H, fused=False),
             "flax": make_flax(cell_name, B, T, I, H)}
      if have_torch:
        fns["torch"] = make_torch(cell_name, B, T, I, H)
      times = common.time_round_robin(fns, rounds)
      flops = 3 * 2 * B * T * (I + H) * GATES[cell_name] * H
      row = {"cell": cell_name, "shape": [B, T, I, H], "flops": flops,
             "floor_ms": flops / rate * 1e3, "impls": {}}
      for k, ts in times.items():
        ms = float(np.median(ts)) * 1e3
        row["impls"][k] = {"ms": ms, "tokens_per_s": B * T / ms * 1e3,
                           "all_ms": [t * 1e3 for t in ts]}
      ours = row["impls"]["rnn_zoo"]["ms"]
      print(f"{cell_name} {B}x{T}x{I}x{H}: " + ", ".join(
          f"{k} {m['ms']:.1f} ms ({m['ms'] / ours:.2f}x)"
          for k, m in row["impls"].items()) +
            f"; floor {row['floor_ms']:.1f} ms, ours {ours / row['floor_ms']:.2f}x floor",
            flush=True)
      rows.append(row)
  results = {
      "command": "python -m benchmarks.throughput " + " ".join(sys.argv[1:]),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "environment": common.environment(), "rounds": rounds,
      "gemm_gflops": rate / 1e9, "gemm_gflops_after": gemm_rate() / 1e9,
      "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results))
  print(f"wrote {out / 'report.md'} and {out / 'results.json'}")


if __name__ == "__main__":
  app.run(main)
