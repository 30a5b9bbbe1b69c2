r"""How accurate the float32 runners are, against float64.

For each cell and T: outputs and parameter gradients (of ``sum(sin(ys))``)
of the float32 runners, each against the float64 sequential loop; the
largest absolute error relative to the largest reference value. minGRU and
minLSTM: the sequential loop, the associative scan and the log-space scan.
LSTM and GRU: the scan runner and the native CPU kernels
(:mod:`rnn_zoo.native`, whose exp is a polynomial: the approximation
measured here).

Usage::

  python -m benchmarks.scan_precision                      # T = 1,024 ... 16,384
  python -m benchmarks.scan_precision --lengths=64 --hidden=4
  python -m benchmarks.scan_precision --cells=lstm,gru --lengths=128,1024
"""

from __future__ import annotations

import datetime
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import rnn_zoo as rz

from benchmarks import common

CELLS = {"mingru": rz.MinGRU, "minlstm": rz.MinLSTM, "lstm": rz.LSTM, "gru": rz.GRU}
LINEAR_MODES = {"sequential": {"parallel": False}, "associative": {"parallel": True},
                "log": {"parallel": "log"}}
NATIVE_MODES = {"scan": {"native": False}, "native": {"native": True}}
CELL_MODES = {"mingru": LINEAR_MODES, "minlstm": LINEAR_MODES, "lstm": NATIVE_MODES,
              "gru": NATIVE_MODES}

_CELLS = flags.DEFINE_list("cells", list(CELLS), f"Cells: {', '.join(CELLS)}.")

_LENGTHS = flags.DEFINE_list("lengths", ["1024", "4096", "16384"], "Sequence lengths T.")
_BATCH = flags.DEFINE_integer("batch", 4, "Batch size B.")
_INPUT = flags.DEFINE_integer("input", 16, "Input size I.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Hidden size H.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/scan_precision/<timestamp>).")


def _rel(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def measure(name: str, T: int, B: int, I: int, H: int) -> dict:
  def run(cell, p, xs, kw):
    ys = jax.jit(lambda p, xs: rz.unroll(cell, p, xs, **kw)[0])(p, xs)
    g = jax.jit(jax.grad(lambda p, xs: jnp.sum(jnp.sin(
        rz.unroll(cell, p, xs, **kw)[0]))))(p, xs)
    return ys, g

  with jax.enable_x64(True):
    cell64 = CELLS[name](H, dtype=jnp.float64, param_dtype=jnp.float64)
    p64 = cell64.init(jax.random.key(0), I)
    xs64 = jax.random.normal(jax.random.key(1), (B, T, I), jnp.float64)
    ref_kw = {"parallel": False} if CELL_MODES[name] is LINEAR_MODES else {}
    ref_y, ref_g = jax.device_get(run(cell64, p64, xs64, ref_kw))
  cell = CELLS[name](H)
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  xs = jnp.asarray(xs64, jnp.float32)
  row = {"cell": name, "T": T, "modes": {}}
  for mode, kw in CELL_MODES[name].items():
    ys, g = run(cell, p, xs, kw)
    row["modes"][mode] = {
        "outputs": _rel(ys, ref_y),
        "gradients": max(_rel(a, b) for a, b in zip(jax.tree.leaves(g),
                                                   jax.tree.leaves(ref_g)))}
  return row


def report_markdown(results: dict) -> str:
  env = results["environment"]
  L = ["# Float32 scans against the float64 loop", "",
       f"Command: `{results['command']}`  ",
       f"Date: {results['date']}; {env['device_kind']} ({env['cpu_count']} CPU cores, "
       f"{env['processor'] or env['machine']}); B={results['batch']}, "
       f"I={results['input']}, H={results['hidden']}.", "",
       "Largest error relative to the largest reference value (outputs; the worst "
       "parameter gradient)."]
  for modes in (LINEAR_MODES, NATIVE_MODES):
    rows = [r for r in results["rows"] if CELL_MODES[r["cell"]] is modes]
    if not rows:
      continue
    L += ["", "| cell | T | " + " | ".join(f"{m} outputs | {m} gradients" for m in modes) + " |",
          "|---|---:|" + "---:|" * (2 * len(modes))]
    for r in rows:
      L.append(f"| {r['cell']} | {r['T']} | " + " | ".join(
          f"{r['modes'][m]['outputs']:.1e} | {r['modes'][m]['gradients']:.1e}"
          for m in modes) + " |")
  return "\n".join(L) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lengths = common.parse_lengths(_LENGTHS.value)
  out = common.run_folder(_OUT.value, "scan_precision")
  bad = [c for c in _CELLS.value if c not in CELLS]
  if bad:
    sys.exit(f"error: --cells must name {', '.join(CELLS)}, got {bad}")
  rows = []
  for name in _CELLS.value:
    for T in lengths:
      rows.append(measure(name, T, _BATCH.value, _INPUT.value, _HIDDEN.value))
      print(f"{name} T={T}: " + "; ".join(
          f"{m} {v['outputs']:.1e} / {v['gradients']:.1e}" for m, v in rows[-1]["modes"].items()),
            flush=True)
  results = {"command": "python -m benchmarks.scan_precision " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "batch": _BATCH.value,
             "input": _INPUT.value, "hidden": _HIDDEN.value, "rows": rows}
  common.write_report(out, report_markdown(results), results)


if __name__ == "__main__":
  app.run(main)
