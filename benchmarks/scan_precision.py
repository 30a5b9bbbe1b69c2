r"""How accurate the float32 scans of minGRU/minLSTM are, against float64.

For each cell and T: outputs and parameter gradients (of ``sum(sin(ys))``)
of the float32 sequential loop, associative scan and log-space scan, each
against the float64 sequential loop; the largest absolute error relative to
the largest reference value.

Usage::

  python -m benchmarks.scan_precision                      # T = 1,024 ... 16,384
  python -m benchmarks.scan_precision --lengths=64 --hidden=4
"""

from __future__ import annotations

import datetime
import json
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import rnn_zoo as rz

from benchmarks import common

CELLS = {"mingru": rz.MinGRU, "minlstm": rz.MinLSTM}
MODES = {"sequential": False, "associative": True, "log": "log"}

_LENGTHS = flags.DEFINE_list("lengths", ["1024", "4096", "16384"], "Sequence lengths T.")
_BATCH = flags.DEFINE_integer("batch", 4, "Batch size B.")
_INPUT = flags.DEFINE_integer("input", 16, "Input size I.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Hidden size H.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/scan_precision/<timestamp>).")


def _rel(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def measure(name: str, T: int, B: int, I: int, H: int) -> dict:
  def run(cell, p, xs, mode):
    ys = jax.jit(lambda p, xs: rz.unroll(cell, p, xs, parallel=mode)[0])(p, xs)
    g = jax.jit(jax.grad(lambda p, xs: jnp.sum(jnp.sin(
        rz.unroll(cell, p, xs, parallel=mode)[0]))))(p, xs)
    return ys, g

  with jax.enable_x64(True):
    cell64 = CELLS[name](H, dtype=jnp.float64, param_dtype=jnp.float64)
    p64 = cell64.init(jax.random.key(0), I)
    xs64 = jax.random.normal(jax.random.key(1), (B, T, I), jnp.float64)
    ref_y, ref_g = jax.device_get(run(cell64, p64, xs64, False))
  cell = CELLS[name](H)
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  xs = jnp.asarray(xs64, jnp.float32)
  row = {"cell": name, "T": T, "modes": {}}
  for mode, arg in MODES.items():
    ys, g = run(cell, p, xs, arg)
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
       "parameter gradient).", "",
       "| cell | T | " + " | ".join(f"{m} outputs | {m} gradients" for m in MODES) + " |",
       "|---|---:|" + "---:|" * (2 * len(MODES))]
  for r in results["rows"]:
    L.append(f"| {r['cell']} | {r['T']} | " + " | ".join(
        f"{r['modes'][m]['outputs']:.1e} | {r['modes'][m]['gradients']:.1e}" for m in MODES) + " |")
  return "\n".join(L) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lengths = common.parse_lengths(_LENGTHS.value)
  out = common.run_folder(_OUT.value, "scan_precision")
  rows = []
  for name in CELLS:
    for T in lengths:
      rows.append(measure(name, T, _BATCH.value, _INPUT.value, _HIDDEN.value))
      print(f"{name} T={T}: " + "; ".join(
          f"{m} {v['outputs']:.1e} / {v['gradients']:.1e}" for m, v in rows[-1]["modes"].items()),
            flush=True)
  results = {"command": "python -m benchmarks.scan_precision " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "batch": _BATCH.value,
             "input": _INPUT.value, "hidden": _HIDDEN.value, "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results))
  print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
  app.run(main)
