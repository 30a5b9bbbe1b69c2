"""What ``rz.nnx.RNN`` costs over the functional call it wraps.

For each cell and shape, four ways to run the same jitted training step
(loss, gradients and an Adam update) on the same params, timed in
interleaved rounds (medians):

* ``functional``: ``jax.jit`` of ``StackedRNN.apply`` + optax on the dict;
* ``linen``: ``jax.jit`` of ``rz.nn.RNN.apply`` + optax;
* ``nnx.jit``: ``nnx.jit`` of ``nnx.value_and_grad`` + ``nnx.Optimizer``
  on an ``rz.nnx.RNN``, the way the Flax NNX guide writes a train step;
* ``nnx cached``: the same step through ``nnx.cached_partial``, which
  skips re-walking the module graph on every call;
* ``jax.jit pytree``: the same step under plain ``jax.jit``, the module and
  optimizer passed and returned as pytrees (NNX modules are pytrees).

The ratio of each median to the functional one is the overhead (target:
<= 1.05 at the throughput benchmark's small shape 16x256x32x64). Beside
them, the cost of ``nnx.jit`` itself: an empty function of the same module
and optimizer, called through ``nnx.jit`` (Flax walks both graphs on every
call), so a reader can tell the module's cost from the transform's.

  python -m benchmarks.nnx_overhead                      # lstm and gru, 2 shapes
  python -m benchmarks.nnx_overhead --cells=lstm --shapes=16x256x32x64 --rounds=5

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/nnx_overhead/<timestamp>``).
"""

from __future__ import annotations

import datetime
import statistics
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from benchmarks import common
import rnn_zoo as rz

_CELLS = flags.DEFINE_list("cells", ["lstm", "gru"], "Zoo cells (rz.CELLS names).")
_SHAPES = flags.DEFINE_string("shapes", "16x256x32x64,32x128x128x256",
                              "Comma-separated BxTxIxH or BxTxIxHxL shapes.")
_ROUNDS = flags.DEFINE_integer("rounds", 21, "Timed rounds (medians).")
_CALLS = flags.DEFINE_integer("calls", 5, "Training steps per timed sample.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/nnx_overhead/<timestamp>).")

TARGET = 1.05
EMPTY = "nnx.jit empty"  # timed beside the contenders, not a way to train
OPTIMIZER = optax.adam(1e-3)


def _loss(ys, target):
  return jnp.mean((ys - target) ** 2)


def contenders(cell_name: str, shape) -> dict:
  """name -> a no-argument function running one training step (blocking),
  and :data:`EMPTY`: ``nnx.jit`` of an empty function of the same module
  and optimizer (its dispatch cost alone)."""
  B, T, I, H, L = shape
  cell = rz.make_cell(cell_name, H)
  xs = jax.random.normal(jax.random.key(0), (B, T, I))
  target = jax.random.normal(jax.random.key(1), (B, T, H))
  module = rz.nnx.RNN(cell, I, num_layers=L, rngs=nnx.Rngs(0))
  stack, params = module.stack, module.to_params()
  linen = rz.nn.RNN(cell, num_layers=L)

  def functional_step(apply):
    @jax.jit
    def step(p, state):
      value, grads = jax.value_and_grad(lambda p: _loss(apply(p), target))(p)
      updates, state = OPTIMIZER.update(grads, state, p)
      return optax.apply_updates(p, updates), state, value
    carry = [params, OPTIMIZER.init(params)]

    def run():
      carry[0], carry[1], value = step(*carry)
      jax.block_until_ready(value)
    return run

  def nnx_step(m, opt):
    value, grads = nnx.value_and_grad(lambda m: _loss(m(xs), target))(m)
    opt.update(m, grads)
    return value

  optimizer = nnx.Optimizer(module, OPTIMIZER, wrt=nnx.Param)
  jitted = nnx.jit(nnx_step)
  twin = nnx.clone(module)
  cached = nnx.cached_partial(nnx.jit(nnx_step), twin,
                              nnx.Optimizer(twin, OPTIMIZER, wrt=nnx.Param))
  pytree_step = jax.jit(lambda m, opt: (m, opt, nnx_step(m, opt)))
  pytree = [nnx.clone(module)]
  pytree.append(nnx.Optimizer(pytree[0], OPTIMIZER, wrt=nnx.Param))

  def run_pytree():
    pytree[0], pytree[1], value = pytree_step(*pytree)
    jax.block_until_ready(value)

  empty = nnx.jit(lambda m, opt: None)

  return {
      "functional": functional_step(lambda p: stack.apply(p, xs)[0]),
      "linen": functional_step(lambda p: linen.apply({"params": {"stack": p}}, xs)),
      "nnx.jit": lambda: jax.block_until_ready(jitted(module, optimizer)),
      "nnx cached": lambda: jax.block_until_ready(cached()),
      "jax.jit pytree": run_pytree,
      EMPTY: lambda: empty(module, optimizer),
  }


def _repeat(fn, calls: int):
  def run():
    for _ in range(calls):
      fn()
  return run


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name in _CELLS.value:
    if name not in rz.CELLS:
      sys.exit(f"error: --cells entries must be among {sorted(rz.CELLS)}, got {name!r}")
  for name, flag in (("rounds", _ROUNDS), ("calls", _CALLS)):
    if flag.value < 1:
      sys.exit(f"error: --{name} must be >= 1, got {flag.value}")
  try:
    shapes = common.parse_shapes(_SHAPES.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  rows = []
  for cell_name in _CELLS.value:
    for shape in shapes:
      fns = {k: _repeat(fn, _CALLS.value) for k, fn in contenders(cell_name, shape).items()}
      times = common.time_round_robin(fns, _ROUNDS.value)
      med = {k: statistics.median(v) / _CALLS.value for k, v in times.items()}
      empty_ms = 1e3 * med.pop(EMPTY)
      rows.append({"cell": cell_name, "shape": list(shape),
                   "median_ms": {k: 1e3 * v for k, v in med.items()},
                   "ratio": {k: v / med["functional"] for k, v in med.items()},
                   "nnx_jit_empty_ms": empty_ms,
                   "times_s": times})
  out = common.run_folder(_OUT.value, "nnx_overhead")
  results = {"date": datetime.date.today().isoformat(), "rounds": _ROUNDS.value,
             "calls": _CALLS.value,
             "target": TARGET, "environment": common.environment(), "rows": rows}
  common.write_report(out, report(results), results)


def report(results: dict) -> list[str]:
  env = results["environment"]
  names = list(results["rows"][0]["median_ms"])
  lines = [f"# rz.nnx.RNN overhead over the functional call ({results['date']})", "",
           f"{env['cpu_count']} CPUs ({env.get('cpu_model') or env['machine']}), jax "
           f"{env['jax']}, {results['rounds']} interleaved rounds of "
           f"{results['calls']} training steps (loss, gradients, Adam update); "
           "medians per step. Ratio: median over the functional median (target: "
           f"<= {results['target']} at 16×256×32×64). Linen runs the identical jitted "
           "function as functional: its distance from 1 is this run's noise.", "",
           "| cell | shape | " + " | ".join(f"{n} ms (ratio)" for n in names)
           + " | nnx.jit of an empty fn, ms |",
           "|---|---|" + "---|" * (len(names) + 1)]
  for r in results["rows"]:
    cells = " | ".join(f"{r['median_ms'][n]:.2f} ({r['ratio'][n]:.3f})" for n in names)
    lines.append(f"| {r['cell']} | {common.shape_name(r['shape'])} | {cells} | "
                 f"{r['nnx_jit_empty_ms']:.2f} |")
  noise = max(abs(r["ratio"]["linen"] - 1) for r in results["rows"])
  lines += ["", f"Largest distance of linen from 1 (the noise): {noise:.3f}."]
  for name in names[2:]:
    worst = max(r["ratio"][name] for r in results["rows"])
    verdict = "within" if worst <= results["target"] else "over"
    lines.append(f"- {name}: largest ratio {worst:.3f}, {verdict} the target "
                 f"{results['target']}.")
  return lines


if __name__ == "__main__":
  common.run_main(main)
