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
* ``rnn_zoo[scan]``: the LSTM's and GRU's scan runner with the fused
  backward (``impl="fused"``), the portable reference the native kernels
  replace;
* ``rnn_zoo[autodiff]``: plain autodiff of ``lax.scan`` (``impl="scan"``)
  — the ablation;
* ``rnn_zoo[cudnn]`` (``--device=gpu``, LSTM, float32): the LSTM through
  cuDNN (``impl="cudnn"``, :mod:`rnn_zoo.cudnn`);
* ``flax``: ``nn.RNN(nn.OptimizedLSTMCell)`` / ``nn.RNN(nn.GRUCell)``;
* ``torch``: ``nn.LSTM`` / ``nn.GRU`` (when torch is installed; on the GPU
  with ``--device=gpu``, where it runs cuDNN);
* for ``mingru`` / ``minlstm`` / ``lru`` (no library ships them to compare
  with): ``rnn_zoo`` is the parallel (associative) scan, the default for
  these cells, and ``rnn_zoo[sequential]`` the same cell stepped by the
  ordinary scan (``impl="scan"``); the report puts the zoo's LSTM time of
  the same shape and mode beside them when ``--cells`` includes ``lstm``;

interleaved round by round (so drift hits all alike), reporting medians,
tokens/s, the ratio of every anchor's time to ours, and the ratio of each
time to the FLOP floor ``3 * 2*B*T*(I+H)*G*H / R`` where R is this machine's
float32 GEMM rate measured in the same run (the higher of the readings before
and after the rows).

Usage::

  python -m benchmarks.throughput                  # all shapes, ~3 min on 2 cores
  python -m benchmarks.throughput --preset=quick   # fewer rounds (make demo)
  python -m benchmarks.throughput --cells=lstm --shapes=32x128x128x256
  python -m benchmarks.throughput --modes=infer --shapes=32x128x128x256x2  # 2 layers
  python -m benchmarks.throughput --cells=lstm,mingru,minlstm,lru --no_torch
  python -m benchmarks.throughput --device=gpu              # scan, cuDNN, Flax, PyTorch CUDA
  python -m benchmarks.throughput --device=gpu --dtype=bfloat16

``--dtype=bfloat16`` computes the matmuls in bfloat16 with float32
accumulation and carry (the cells' ``dtype``; Flax's cells' ``dtype``;
PyTorch under ``torch.autocast``, whose output dtype the report gives).
On ``--device=gpu`` the float32 rows use TF32 matmuls in JAX, cuDNN and
PyTorch alike unless ``--precision=highest``.

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/throughput/<timestamp>``).
"""

from __future__ import annotations

import contextlib
import datetime
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
         "rnn_zoo[cudnn]", "flax", "torch")
_IMPLS = flags.DEFINE_list("impls", list(IMPLS),
                           "Implementations to time (rnn_zoo is always timed).")
DEVICES = ("cpu", "gpu")
_DEVICE = flags.DEFINE_enum(
    "device", "cpu", list(DEVICES),
    "Where everything runs: cpu (JAX kept on the CPU even where a GPU is "
    "present) or gpu (JAX's GPU backend and PyTorch CUDA; fails without one).")
DTYPES = ("float32", "bfloat16")
_DTYPE = flags.DEFINE_enum("dtype", "float32", list(DTYPES),
                           "Compute dtype of the matmuls (carry and accumulation "
                           "stay float32).")
_PRECISION = flags.DEFINE_enum(
    "precision", "default", ["default", "highest"],
    "float32 matmul precision: default (TF32 on recent NVIDIA GPUs, in JAX, "
    "cuDNN and PyTorch alike) or highest (full float32 everywhere).")
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


def gemm_rate(n: int = 2048, rounds: int = 7, dtype=jnp.float32) -> float:
  """This device's GEMM rate (FLOP/s) through XLA in ``dtype`` (float32
  accumulation), median of rounds."""
  a = jax.random.normal(jax.random.key(0), (n, n)).astype(dtype)
  mm = jax.jit(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32))
  mm(a).block_until_ready()
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n ** 3 / float(np.median(times))


def make_zoo(cell_name, B, T, I, H, L, mode, impl="auto", dtype="float32"):
  """``impl``: the runner's implementation (:func:`rnn_zoo.unroll`);
  ``dtype``: the compute dtype."""
  cell = rz.make_cell(cell_name, H, dtype=jnp.dtype(dtype))
  model = rz.StackedRNN.of(cell, L) if L > 1 else cell
  params = model.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))

  def forward(p, x):
    if L > 1:
      # StackedRNN runs each layer through rz.unroll (fused backward by default).
      return model.apply(p, x, impl=impl)[0]
    return rz.unroll(cell, p, x, impl=impl)[0]

  if mode == "infer":
    step = jax.jit(forward)
  else:
    step = jax.jit(lambda p, x: jax.grad(lambda p, x: jnp.sum(forward(p, x) * r),
                                         (0, 1))(p, x))
  return lambda: jax.block_until_ready(step(params, xs))


def make_flax(cell_name, B, T, I, H, L, mode, dtype="float32"):
  dt = jnp.dtype(dtype)
  make_cell = (lambda: nn.OptimizedLSTMCell(H, dtype=dt)) if cell_name == "lstm" else (
      lambda: nn.GRUCell(H, dtype=dt))
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


def make_torch(cell_name, B, T, I, H, L, mode, device="cpu", dtype="float32"):
  """PyTorch's ``nn.LSTM`` / ``nn.GRU`` on ``device`` ("cpu" or "gpu":
  CUDA); ``dtype="bfloat16"`` runs it under ``torch.autocast``. Returns the
  timed function (which waits for the GPU) and the output's dtype."""
  import torch  # pylint: disable=g-import-not-at-top
  dev = torch.device("cuda" if device == "gpu" else "cpu")
  module = (torch.nn.LSTM if cell_name == "lstm" else torch.nn.GRU)(
      I, H, num_layers=L, batch_first=True).to(dev)
  xs = torch.randn(B, T, I, device=dev, requires_grad=mode == "train")
  r = torch.randn(B, T, H, device=dev)
  autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if (
      dtype == "bfloat16") else contextlib.nullcontext
  sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

  def train():
    module.zero_grad(set_to_none=True)
    xs.grad = None
    with autocast():
      out, _ = module(xs)
    (out.float() * r).sum().backward()
    sync()

  def infer():
    with torch.no_grad(), autocast():
      out, _ = module(xs)
    sync()
    return out

  try:
    with torch.no_grad(), autocast():
      out_dtype = str(module(xs)[0].dtype).replace("torch.", "")
  except RuntimeError as e:
    # oneDNN has no bfloat16 LSTM on CPUs without AVX-512 ("could not create
    # a primitive descriptor"): no anchor to time, said in the report.
    raise TorchUnavailable(f"torch {dtype} {cell_name} on {dev.type}: "
                           f"{str(e).splitlines()[0]}") from e
  return (train if mode == "train" else infer), out_dtype


class TorchUnavailable(RuntimeError):
  """PyTorch cannot run this anchor here (the message says why)."""


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
      f"Run on: {results.get('device', 'cpu')}, compute dtype "
      f"{results.get('dtype', 'float32')} (carry and accumulation float32), "
      f"float32 matmul precision {results.get('precision', 'default')}"
      + (f", PyTorch TF32 switches {results['torch_tf32']}"
         if results.get("torch_tf32") and results.get("device") == "gpu" else "")
      + "  ",
      f"Measured {results.get('dtype', 'float32')} GEMM rate: "
      f"{results['gemm_gflops']:.1f} GFLOP/s "
      f"(before) / {results['gemm_gflops_after']:.1f} (after)", "",
      "Times are medians of interleaved rounds of one jitted pass: `train` is "
      "forward+backward (grads of params and inputs), `infer` the forward pass "
      "alone. `x anchor` = anchor time / rnn_zoo time (> 1: rnn_zoo is "
      "faster). `x floor` = time / FLOP floor (the matmul FLOPs at the "
      "higher of the two GEMM rates).", "",
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
  torch_dtypes = {r["cell"]: r["torch_output_dtype"] for r in results["rows"]
                  if r.get("torch_output_dtype")}
  if torch_dtypes:
    lines += ["", "PyTorch's output dtype: " + ", ".join(
        f"{cell} {dt}" for cell, dt in torch_dtypes.items()) + "."]
  missing = sorted({r["torch_unavailable"] for r in results["rows"]
                    if r.get("torch_unavailable")})
  if missing:
    lines += ["", "No PyTorch row where it cannot run here: " + "; ".join(missing) + "."]
  cudnn_rows = [r for r in results["rows"]
                if {"rnn_zoo[cudnn]", "torch"} <= set(r["impls"])]
  if cudnn_rows:
    lines += ["", "PyTorch's time over the zoo's cuDNN path's (> 1: the zoo is "
              "faster): " + ", ".join(
                  f"{r['mode']} {common.shape_name(r['shape'])} "
                  f"{r['impls']['torch']['ms'] / r['impls']['rnn_zoo[cudnn]']['ms']:.2f}"
                  for r in cudnn_rows) + "."]
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


def select_device(device: str) -> None:
  """Keeps JAX on the CPU for ``cpu`` (before its backends start, so also
  on a machine with a GPU); exits with one line when ``gpu`` has none."""
  if device == "cpu":
    jax.config.update("jax_platforms", "cpu")
    return
  # PyTorch shares the GPU: JAX would otherwise take 75% of its memory at start.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  backend = jax.default_backend()
  if backend != "gpu":
    sys.exit(f"error: --device=gpu but JAX sees no GPU here (its backend is "
             f"{backend}): install a CUDA build of jaxlib (e.g. "
             "pip install 'jax[cuda12]'), or run with --device=cpu")


def torch_ready(device: str, precision: str) -> bool:
  """Whether the PyTorch anchor can run on ``device`` (says why not); on
  the GPU sets its TF32 switches to ``precision``, as JAX's."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("torch not installed: skipping the PyTorch anchor "
          "(pip install -e '.[torch]')")
    return False
  if device == "gpu":
    if not torch.cuda.is_available():
      print(f"torch {torch.__version__} sees no CUDA GPU: skipping the PyTorch anchor")
      return False
    tf32 = precision == "default"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
  return True


def torch_tf32() -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  return {"matmul": torch.backends.cuda.matmul.allow_tf32,
          "cudnn": torch.backends.cudnn.allow_tf32}


def _contenders(cell_name: str, shape, mode: str, device: str, dtype: str,
                have_torch: bool) -> tuple[dict, str | None, str | None]:
  """``({name: step function}, torch output dtype, why there is no torch row)``
  for one row: the zoo's default and the ablations and anchors asked for."""
  B, T, I, H, L = shape
  wanted = lambda impl: impl in _IMPLS.value
  fns = {"rnn_zoo": make_zoo(cell_name, B, T, I, H, L, mode, dtype=dtype)}
  torch_dtype = torch_missing = None
  if cell_name in LINEAR:
    if wanted("rnn_zoo[sequential]"):
      # the ablation: the same cell stepped by the sequential scan
      fns["rnn_zoo[sequential]"] = make_zoo(cell_name, B, T, I, H, L, mode,
                                            impl="scan", dtype=dtype)
  else:
    if device == "cpu" and dtype == "float32" and wanted("rnn_zoo[scan]"):
      # the reference the native kernel replaces (off the CPU, or in
      # bfloat16, the default is this scan already)
      fns["rnn_zoo[scan]"] = make_zoo(cell_name, B, T, I, H, L, mode,
                                      impl="fused")
    if (device == "gpu" and cell_name == "lstm" and dtype == "float32"
        and wanted("rnn_zoo[cudnn]")):
      fns["rnn_zoo[cudnn]"] = make_zoo(cell_name, B, T, I, H, L, mode,
                                       impl="cudnn")
    if L == 1 and wanted("rnn_zoo[autodiff]"):
      # the ablation: plain autodiff of the same scan
      fns["rnn_zoo[autodiff]"] = make_zoo(cell_name, B, T, I, H, L, mode,
                                          impl="scan", dtype=dtype)
    if wanted("flax"):
      fns["flax"] = make_flax(cell_name, B, T, I, H, L, mode, dtype)
    if have_torch:
      try:
        fns["torch"], torch_dtype = make_torch(cell_name, B, T, I, H, L, mode,
                                               device, dtype)
      except TorchUnavailable as e:
        torch_missing = str(e)
        print(f"no torch row: {torch_missing}", flush=True)
  return fns, torch_dtype, torch_missing


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
  device, dtype = _DEVICE.value, _DTYPE.value
  select_device(device)
  if _PRECISION.value == "highest":
    jax.config.update("jax_default_matmul_precision", "highest")
  malloc = False
  if device == "cpu" and not _XLA_DEFAULTS.value:
    xla_config.use_recommended_cpu_flags()
    malloc = xla_config.use_recommended_malloc()
  have_torch = False
  if not _NO_TORCH.value and "torch" in _IMPLS.value:
    have_torch = torch_ready(device, _PRECISION.value)
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "throughput", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)

  rate = gemm_rate(dtype=jnp.dtype(dtype))
  print(f"{dtype} GEMM rate on {jax.devices()[0].device_kind}: {rate / 1e9:.1f} GFLOP/s")
  rows = []
  for cell_name in _CELLS.value:
    for shape in shapes:
      B, T, I, H, L = shape
      for mode in _MODES.value:
        fns, torch_dtype, torch_missing = _contenders(cell_name, shape, mode, device,
                                                      dtype, have_torch)
        times = common.time_round_robin(fns, rounds)
        f = flops(cell_name, shape, mode)
        row = {"cell": cell_name, "mode": mode, "shape": list(shape), "flops": f,
               "floor_ms": f / rate * 1e3, "impls": {}, "torch_output_dtype": torch_dtype,
               "torch_unavailable": torch_missing}
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
  rate_after = gemm_rate(dtype=jnp.dtype(dtype))
  # The floor at the higher of the two readings: a reading taken while
  # another process had a core (144 against 172 GFLOP/s in one run) made
  # every row look faster than its floor.
  best_rate = max(rate, rate_after)
  for row in rows:
    row["floor_ms"] = row["flops"] / best_rate * 1e3
  results = {
      "command": "python -m benchmarks.throughput " + " ".join(sys.argv[1:]),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "environment": common.environment(), "rounds": rounds, "malloc_tuned": malloc,
      "device": device, "dtype": dtype, "precision": _PRECISION.value,
      "torch_tf32": torch_tf32() if have_torch else None,
      "gemm_gflops": rate / 1e9,
      "gemm_gflops_after": rate_after / 1e9,
      "rows": rows}
  common.write_report(out, report_markdown(results), results)


if __name__ == "__main__":
  app.run(main)
