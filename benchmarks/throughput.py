r"""Throughput of the zoo's LSTM and GRU beside the anchors, and of its
linear recurrences (minGRU, minLSTM, LRU) beside their own sequential runner:
training (forward+backward) and inference (forward only).

For each cell, shape (batch, time, input, hidden[, layers]) and mode it times
one jitted pass of:

* ``train``: forward+backward (gradients of ``sum(ys * r)`` with respect to
  the params and the inputs);
* ``infer``: the forward pass alone (evaluation, sampling, serving; PyTorch
  under ``torch.no_grad()``);

for:

* ``rnn_zoo``: :func:`rnn_zoo.unroll` with its defaults (for the LSTM and
  GRU on a one-device CPU process, the native kernels of
  :mod:`rnn_zoo.native`; otherwise the scan with the fused backward);
* ``rnn_zoo[scan]``: the LSTM's and GRU's scan runner (``native=False``, the
  fused backward), the portable reference the native kernels replace;
* ``rnn_zoo[autodiff]``: the same runner with ``fused=False`` (plain
  autodiff of ``lax.scan``) — the ablation;
* ``flax``: ``nn.RNN(nn.OptimizedLSTMCell)`` / ``nn.RNN(nn.GRUCell)``;
* ``torch``: ``nn.LSTM`` / ``nn.GRU`` (when torch is installed);
* for ``mingru`` / ``minlstm`` / ``lru`` (no library ships them to compare
  with): ``rnn_zoo`` is the parallel (associative) scan, the default for
  these cells, and ``rnn_zoo[sequential]`` the same cell stepped by the
  ordinary scan (``parallel=False``); the report puts the zoo's LSTM time of
  the same shape and mode beside them when ``--cells`` includes ``lstm``;

interleaved round by round (so drift hits all alike), reporting medians,
tokens/s, the ratio of every anchor's time to ours, and the ratio of each
time to the FLOP floor ``3 * 2*B*T*(I+H)*G*H / R`` where R is this machine's
float32 GEMM rate measured in the same run.

Usage::

  python -m benchmarks.throughput                  # all shapes, ~3 min on 2 cores
  python -m benchmarks.throughput --preset=quick   # fewer rounds (make demo)
  python -m benchmarks.throughput --cells=lstm --shapes=32x128x128x256
  python -m benchmarks.throughput --modes=infer --shapes=32x128x128x256x2  # 2 layers
  python -m benchmarks.throughput --cells=lstm,mingru,minlstm,lru --no_torch

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
    "quick": {"rounds": 3, "shapes": "32x128x128x256,16x256x32x64,64x64x256x512,"
                                     "32x128x128x256x2"},
    "full": {"rounds": 9, "shapes": "32x128x128x256,16x256x32x64,64x64x256x512,"
                                    "32x128x128x256x2"},
}

_PRESET = flags.DEFINE_enum("preset", "full", sorted(PRESETS), "Rounds and shapes.")
_CELLS = flags.DEFINE_list("cells", ["lstm", "gru"],
                           "Cells: lstm, gru, mingru, minlstm, lru.")
_SHAPES = flags.DEFINE_string(
    "shapes", None, "Comma-separated BxTxIxH or BxTxIxHxL (L layers) shapes "
    "(default: the preset's).")
_MODES = flags.DEFINE_list("modes", ["train", "infer"],
                           "train (forward+backward) and/or infer (forward only).")
_ROUNDS = flags.DEFINE_integer("rounds", None, "Timed rounds (default: preset's).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/throughput/<timestamp>).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch anchor.")
IMPLS = ("rnn_zoo", "rnn_zoo[scan]", "rnn_zoo[autodiff]", "rnn_zoo[sequential]",
         "flax", "torch")
_IMPLS = flags.DEFINE_list("impls", list(IMPLS),
                           "Implementations to time (rnn_zoo is always timed).")
_XLA_DEFAULTS = flags.DEFINE_bool(
    "xla_defaults", False,
    "Keep XLA's default CPU flags and glibc's default malloc instead of "
    "rnn_zoo.xla_config's recommended ones (applied to every implementation "
    "alike, PyTorch included).")

_CELLS_TIMED = {name: rz.make_cell(name, 2)
                for name in ("lstm", "gru", "mingru", "minlstm", "lru")}
# Gate blocks G of the projection [I(+H), G*H] (the cells' num_gates; the
# LRU's H columns are the real and imaginary parts of B x_t).
GATES = {name: c.num_gates for name, c in _CELLS_TIMED.items()}
# The parallel scan's cells: linear in h_{t-1}, elementwise (no recurrent
# matmul); the others' gates read h_{t-1} through one.
LINEAR = tuple(name for name, c in _CELLS_TIMED.items()
               if isinstance(c, rz.LinearRecurrentCell))
MODES = ("train", "infer")


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


def make_zoo(cell_name, B, T, I, H, L, fused, mode, parallel=None, native=None):
  """``fused``: the LSTM/GRU's backward (None: the default); ``parallel``:
  the linear cells' runner (None: the parallel scan; False: sequential);
  ``native``: the LSTM's native kernel (None: the default; False: the scan)."""
  cell = rz.make_cell(cell_name, H)
  model = rz.StackedRNN.of(cell, L) if L > 1 else cell
  params = model.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))

  def forward(p, x):
    if L > 1:
      # StackedRNN runs each layer through rz.unroll (fused backward by default).
      return model.apply(p, x, parallel=parallel, native=native)[0]
    return rz.unroll(cell, p, x, fused=fused, parallel=parallel, native=native)[0]

  if mode == "infer":
    step = jax.jit(forward)
  else:
    step = jax.jit(lambda p, x: jax.grad(lambda p, x: jnp.sum(forward(p, x) * r),
                                         (0, 1))(p, x))
  return lambda: jax.block_until_ready(step(params, xs))


def make_flax(cell_name, B, T, I, H, L, mode):
  make_cell = (lambda: nn.OptimizedLSTMCell(H)) if cell_name == "lstm" else (
      lambda: nn.GRUCell(H))
  model = nn.Sequential([nn.RNN(make_cell()) for _ in range(L)]) if L > 1 else nn.RNN(make_cell())
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))
  variables = model.init(jax.random.key(0), xs)
  if mode == "infer":
    step = jax.jit(model.apply)
  else:
    step = jax.jit(lambda v, x: jax.grad(lambda v, x: jnp.sum(model.apply(v, x) * r),
                                         (0, 1))(v, x))
  return lambda: jax.block_until_ready(step(variables, xs))


def make_torch(cell_name, B, T, I, H, L, mode):
  import torch  # pylint: disable=g-import-not-at-top
  module = (torch.nn.LSTM if cell_name == "lstm" else torch.nn.GRU)(
      I, H, num_layers=L, batch_first=True)
  xs = torch.randn(B, T, I, requires_grad=mode == "train")
  r = torch.randn(B, T, H)

  def train():
    module.zero_grad(set_to_none=True)
    xs.grad = None
    out, _ = module(xs)
    (out * r).sum().backward()

  def infer():
    with torch.no_grad():
      module(xs)
  return train if mode == "train" else infer


def flops(cell_name, shape, mode) -> int:
  """Matmul FLOPs: forward 2·B·T·(I+H)·G·H per layer (layers after the first
  read H inputs); training adds the backward's two products of each."""
  B, T, I, H, L = shape
  rec = 0 if cell_name in LINEAR else H
  per_layer = [2 * B * T * ((I if l == 0 else H) + rec) * GATES[cell_name] * H
               for l in range(L)]
  return sum(per_layer) * (3 if mode == "train" else 1)


def report_markdown(results: dict) -> str:
  env = results["environment"]
  lines = [
      "# Throughput: training (forward + backward) and inference (forward only)", "",
      f"Command: `{results['command']}`  ",
      f"Date: {results['date']}  ",
      f"Device: {env['device_kind']} ({env['backend']}, {env['cpu_count']} cores), "
      f"jax {env['jax']}, torch {env['torch']}, XLA_FLAGS=`{env['xla_flags']}`, "
      f"malloc keeps freed memory (xla_config.use_recommended_malloc): "
      f"{results.get('malloc_tuned', False)}  ",
      f"Measured float32 GEMM rate: {results['gemm_gflops']:.1f} GFLOP/s "
      f"(before) / {results['gemm_gflops_after']:.1f} (after)", "",
      "Times are medians of interleaved rounds of one jitted pass: `train` is "
      "forward+backward (grads of params and inputs), `infer` the forward pass "
      "alone. `x anchor` = anchor time / rnn_zoo time (> 1: rnn_zoo is "
      "faster). `x floor` = time / FLOP floor (the matmul FLOPs at the "
      "measured GEMM rate).", "",
      "| cell | mode | B×T×I×H | impl | ms | tokens/s | x anchor | x floor |",
      "|---|---|---|---|---:|---:|---:|---:|",
  ]
  for row in results["rows"]:
    ours = row["impls"]["rnn_zoo"]["ms"]
    for name, m in row["impls"].items():
      ratio = "" if name == "rnn_zoo" else f"{m['ms'] / ours:.2f}"
      lines.append(
          f"| {row['cell']} | {row['mode']} | {common.shape_name(row['shape'])} | {name} | "
          f"{m['ms']:.1f} | {m['tokens_per_s']:,.0f} | {ratio} | "
          f"{m['ms'] / row['floor_ms']:.2f} |")
  lines += ["", "FLOP floor per row: " + ", ".join(
      f"{r['cell']} {r['mode']} {common.shape_name(r['shape'])}: {r['floor_ms']:.1f} ms"
      for r in results["rows"]), ""]
  beside = linear_vs_lstm(results["rows"])
  if beside:
    lines += [
        "## The linear recurrences beside the zoo's LSTM", "",
        "`x LSTM` = the zoo's LSTM time of the same shape and mode / this "
        "cell's (> 1: faster than the LSTM); `parallel` is the associative "
        "scan (the default for these cells), `sequential` the same cell "
        "stepped by the ordinary scan.", "",
        "| cell | mode | B×T×I×H | parallel ms | sequential ms | x LSTM (parallel) | x LSTM (sequential) |",
        "|---|---|---|---:|---:|---:|---:|"]
    for b in beside:
      seq = "" if b["sequential_ms"] is None else f"{b['sequential_ms']:.1f}"
      seq_ratio = "" if b["sequential_ms"] is None else f"{b['lstm_ms'] / b['sequential_ms']:.2f}"
      lines.append(
          f"| {b['cell']} | {b['mode']} | {common.shape_name(b['shape'])} | "
          f"{b['parallel_ms']:.1f} | {seq} | {b['lstm_ms'] / b['parallel_ms']:.2f} | "
          f"{seq_ratio} |")
    lines.append("")
  return "\n".join(lines)


def linear_vs_lstm(rows) -> list[dict]:
  """For every linear-cell row with an LSTM row of the same shape and mode:
  the times of both runners and of the LSTM (all from one run)."""
  lstm = {(r["mode"], tuple(r["shape"])): r["impls"]["rnn_zoo"]["ms"]
          for r in rows if r["cell"] == "lstm"}
  out = []
  for r in rows:
    key = (r["mode"], tuple(r["shape"]))
    if r["cell"] not in LINEAR or key not in lstm:
      continue
    seq = r["impls"].get("rnn_zoo[sequential]")
    out.append({"cell": r["cell"], "mode": r["mode"], "shape": r["shape"],
                "parallel_ms": r["impls"]["rnn_zoo"]["ms"],
                "sequential_ms": None if seq is None else seq["ms"],
                "lstm_ms": lstm[key]})
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  preset = PRESETS[_PRESET.value]
  try:
    shapes = common.parse_shapes(_SHAPES.value or preset["shapes"])
  except ValueError as e:
    sys.exit(f"error: {e}")
  for c in _CELLS.value:
    if c not in GATES:
      sys.exit(f"error: --cells must name {', '.join(GATES)}, got {c!r}")
  bad = [i for i in _IMPLS.value if i not in IMPLS]
  if bad:
    sys.exit(f"error: --impls must name {', '.join(IMPLS)}, got {bad}")
  for m in _MODES.value:
    if m not in MODES:
      sys.exit(f"error: --modes must name train or infer, got {m!r}")
  rounds = _ROUNDS.value or preset["rounds"]
  malloc = False
  if not _XLA_DEFAULTS.value:
    xla_config.use_recommended_cpu_flags()
    malloc = xla_config.use_recommended_malloc()
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
    for shape in shapes:
      B, T, I, H, L = shape
      for mode in _MODES.value:
        fns = {"rnn_zoo": make_zoo(cell_name, B, T, I, H, L, None, mode)}
        if cell_name in LINEAR:
          if "rnn_zoo[sequential]" in _IMPLS.value:
            # the ablation: the same cell stepped by the sequential scan
            fns["rnn_zoo[sequential]"] = make_zoo(cell_name, B, T, I, H, L, None,
                                                  mode, parallel=False)
        else:
          if cell_name in ("lstm", "gru") and "rnn_zoo[scan]" in _IMPLS.value:
            # the reference the native kernel replaces
            fns["rnn_zoo[scan]"] = make_zoo(cell_name, B, T, I, H, L, None, mode,
                                            native=False)
          if L == 1 and "rnn_zoo[autodiff]" in _IMPLS.value:
            # the ablation: plain autodiff of the same scan
            fns["rnn_zoo[autodiff]"] = make_zoo(cell_name, B, T, I, H, L, False, mode)
          if "flax" in _IMPLS.value:
            fns["flax"] = make_flax(cell_name, B, T, I, H, L, mode)
          if have_torch and "torch" in _IMPLS.value:
            fns["torch"] = make_torch(cell_name, B, T, I, H, L, mode)
        times = common.time_round_robin(fns, rounds)
        f = flops(cell_name, shape, mode)
        row = {"cell": cell_name, "mode": mode, "shape": list(shape), "flops": f,
               "floor_ms": f / rate * 1e3, "impls": {}}
        for k, ts in times.items():
          ms = float(np.median(ts)) * 1e3
          row["impls"][k] = {"ms": ms, "tokens_per_s": B * T / ms * 1e3,
                             "all_ms": [t * 1e3 for t in ts]}
        ours = row["impls"]["rnn_zoo"]["ms"]
        print(f"{cell_name} {mode} {common.shape_name(shape)}: " + ", ".join(
            f"{k} {m['ms']:.1f} ms ({m['ms'] / ours:.2f}x)"
            for k, m in row["impls"].items()) +
              f"; floor {row['floor_ms']:.1f} ms, ours {ours / row['floor_ms']:.2f}x floor",
              flush=True)
        rows.append(row)
  results = {
      "command": "python -m benchmarks.throughput " + " ".join(sys.argv[1:]),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "environment": common.environment(), "rounds": rounds, "malloc_tuned": malloc,
      "gemm_gflops": rate / 1e9, "gemm_gflops_after": gemm_rate() / 1e9,
      "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results))
  print(f"wrote {out / 'report.md'} and {out / 'results.json'}")


if __name__ == "__main__":
  app.run(main)
