r"""Data-parallel training throughput against the number of devices.

The experiment binaries' train step (``rnn_zoo.training.loop``: the batch
sharded along a ``data`` mesh axis, params replicated, one jitted step with
the batch made inside jit straight into its shards) on the long-range
workload, timed on 1, 2, 4, ... devices:

* **weak scaling**: a fixed batch per device (the global batch grows with
  the devices), what one adds devices for;
* **strong scaling**: a fixed global batch split over more devices.

Efficiency per device = examples/s on n devices / (n × examples/s on one).
On a CPU the devices are forced host devices
(``--xla_force_host_platform_device_count``), each count in its own child
process (the flag must be set before JAX starts); they share the machine's
cores, so on a 2-core VM no more than 2× is on offer. With accelerators the
first n real devices are used (counts above the device count are skipped).

Usage::

  python -m benchmarks.data_parallel                            # LSTM, minGRU; 1, 2, 4 devices
  python -m benchmarks.data_parallel --cells=gru --devices=1,2 --steps=10

Writes ``results.json``, ``report.md`` and ``data_parallel.png`` to ``--out``
(default ``runs/data_parallel/<timestamp>``).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags

from rnn_zoo import xla_config

MODES = ("weak", "strong")

_CELLS = flags.DEFINE_list("cells", ["lstm", "mingru"],
                           "Cells (experiments' config.cell).")
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4"], "Device counts.")
_MODES = flags.DEFINE_list("modes", list(MODES), "weak and/or strong scaling.")
_TASK = flags.DEFINE_string("task", "adding", "Long-range task (config.task).")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 100, "Sequence length T.")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "Hidden size H.")
_BATCH_PER_DEVICE = flags.DEFINE_integer(
    "batch_per_device", 32, "Weak scaling: examples per device per step.")
_GLOBAL_BATCH = flags.DEFINE_integer(
    "global_batch", 128, "Strong scaling: examples per step over all devices "
    "(must divide by every device count).")
_STEPS = flags.DEFINE_integer("steps", 20, "Train steps per timed block.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed blocks (the median is reported).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/data_parallel/<timestamp>).")
_CHILD = flags.DEFINE_integer(
    "child", 0, "Internal: time every cell and mode on this many devices and "
    "print the rows as JSON.")


def _config(cell: str, batch: int):
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config()
  c.update(dict(task=_TASK.value, cell=cell, seq_len=_SEQ_LEN.value,
                hidden_size=_HIDDEN.value, batch_size=batch))
  return c


def time_train_step(cell: str, batch: int, n: int) -> dict:
  """Median seconds per train step of the loop's step on the first ``n``
  devices, global batch ``batch``."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload as lr_workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import optim  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import sharding as shard_lib  # pylint: disable=g-import-not-at-top

  config = _config(cell, batch)
  w = lr_workload.long_range(config)
  mesh = Mesh(np.asarray(jax.devices()[:n]), ("data",))
  shard_lib.check_batch_size(batch, mesh)
  data = shard_lib.batch_sharding(mesh)
  optimizer = optim.make_optimizer(config)
  k_init, k_train, k_data = jax.random.split(jax.random.key(0), 3)
  init = lambda: loop.initial_state(w, optimizer, config, k_init, k_train)
  shardings = shard_lib.state_shardings(jax.eval_shape(init), mesh)
  state = jax.jit(init, out_shardings=shardings)()
  batch_fn = jax.jit(lambda s: w.train_batch(jax.random.fold_in(k_data, s), s),
                     out_shardings=data)
  step = jax.jit(loop.make_train_step(w, optimizer, config), donate_argnums=0)
  t = time.perf_counter()
  state, m = step(state, batch_fn(0))
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  state, m = step(state, batch_fn(1))
  jax.block_until_ready(m)
  times, s = [], 2
  for _ in range(_ROUNDS.value):
    t = time.perf_counter()
    for _ in range(_STEPS.value):
      state, m = step(state, batch_fn(s))
      s += 1
    jax.block_until_ready((state, m))
    times.append((time.perf_counter() - t) / _STEPS.value)
  return {"step_s": float(np.median(times)), "all_step_s": times,
          "compile_s": compile_s, "loss": float(m["loss"])}


def _child(n: int) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if n > jax.device_count():
    print(json.dumps({"skipped": f"{n} devices asked, {jax.device_count()} present"}))
    return
  rows = []
  for cell in _CELLS.value:
    for mode in _MODES.value:
      batch = _BATCH_PER_DEVICE.value * n if mode == "weak" else _GLOBAL_BATCH.value
      r = time_train_step(cell, batch, n)
      rows.append({"cell": cell, "mode": mode, "devices": n, "batch": batch,
                   "device_kind": jax.devices()[0].device_kind, **r})
  print(json.dumps({"rows": rows}))


def efficiency(rows: list[dict]) -> list[dict]:
  """Adds examples/s, the speed-up over one device and the efficiency per
  device (speed-up / n) to every row that has a 1-device row of its cell
  and mode."""
  one = {(r["cell"], r["mode"]): r for r in rows if r["devices"] == 1}
  for r in rows:
    r["examples_per_s"] = r["batch"] / r["step_s"]
    base = one.get((r["cell"], r["mode"]))
    if base is not None:
      r["speedup"] = r["examples_per_s"] / base["examples_per_s"]
      r["efficiency"] = r["speedup"] / r["devices"]
  return rows


def report_markdown(results: dict, fig: str | None) -> str:
  env = results["environment"]
  lines = [
      "# Data-parallel training throughput against the number of devices", "",
      f"Command: `{results['command']}`  ",
      f"Date: {results['date']}; {env['device_kind']} ({env['backend']}, "
      f"{env['cpu_count']} CPU cores, {env['processor'] or env['machine']}), jax {env['jax']}  ",
      f"Workload: the experiment binaries' train step on `{results['task']}` "
      f"(T={results['seq_len']}, H={results['hidden']}), Adam, clip 1; median "
      f"of {results['rounds']} blocks of {results['steps']} steps after 2 warm-up steps.",
      "", "*weak*: {} examples per device; *strong*: a global batch of {}. "
      "Efficiency per device = examples/s on n devices / (n × examples/s on 1)."
      .format(results["batch_per_device"], results["global_batch"]), "",
      "| cell | scaling | devices | global batch | ms / step | examples/s | speed-up | efficiency per device | compile s |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in results["rows"]:
    sp = f"{r['speedup']:.2f}" if "speedup" in r else "—"
    ef = f"{r['efficiency']:.2f}" if "efficiency" in r else "—"
    lines.append(f"| {r['cell']} | {r['mode']} | {r['devices']} | {r['batch']} | "
                 f"{r['step_s'] * 1e3:.1f} | {r['examples_per_s']:,.0f} | {sp} | {ef} | "
                 f"{r['compile_s']:.1f} |")
  if results.get("skipped"):
    lines += ["", "Skipped: " + "; ".join(results["skipped"])]
  if fig:
    lines += ["", f"![{fig}]({fig})"]
  return "\n".join(lines) + "\n"


def figure(results: dict, out: pathlib.Path) -> str | None:
  rows = [r for r in results["rows"] if "speedup" in r]
  if not rows:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  ns = sorted({r["devices"] for r in rows})
  ax.plot(ns, ns, "k--", lw=1, label="ideal")
  for key in dict.fromkeys((r["cell"], r["mode"]) for r in rows):
    pts = sorted((r["devices"], r["speedup"]) for r in rows if (r["cell"], r["mode"]) == key)
    ax.plot(*zip(*pts), marker="o", label=f"{key[0]} ({key[1]})")
  ax.set_xlabel("devices")
  ax.set_ylabel("examples/s over 1 device")
  ax.set_xticks(ns)
  ax.set_title(f"{results['environment']['device_kind']}, {results['environment']['cpu_count']} cores")
  ax.legend(fontsize=8)
  fig.tight_layout()
  name = "data_parallel.png"
  fig.savefig(out / name, dpi=110)
  plt.close(fig)
  return name


def _check_flags() -> list[int]:
  try:
    counts = [int(d) for d in _DEVICES.value]
  except ValueError:
    sys.exit(f"error: --devices must be positive ints, got {_DEVICES.value}")
  if not counts or any(n < 1 for n in counts):
    sys.exit(f"error: --devices must be positive ints, got {_DEVICES.value}")
  bad = [m for m in _MODES.value if m not in MODES]
  if bad or not _MODES.value:
    sys.exit(f"error: --modes must name weak and/or strong, got {_MODES.value}")
  from rnn_zoo import CELL_NAMES  # pylint: disable=g-import-not-at-top
  bad = [c for c in _CELLS.value if c not in CELL_NAMES]
  if bad or not _CELLS.value:
    sys.exit(f"error: --cells must name cells from {list(CELL_NAMES)}, got {_CELLS.value}")
  for name, flag in (("seq_len", _SEQ_LEN), ("hidden", _HIDDEN), ("steps", _STEPS),
                     ("rounds", _ROUNDS), ("batch_per_device", _BATCH_PER_DEVICE),
                     ("global_batch", _GLOBAL_BATCH)):
    if flag.value < 1:
      sys.exit(f"error: --{name} must be a positive int, got {flag.value}")
  if "strong" in _MODES.value:
    bad = [n for n in counts if _GLOBAL_BATCH.value % n]
    if bad:
      sys.exit(f"error: --global_batch={_GLOBAL_BATCH.value} does not divide by "
               f"--devices {bad}")
  return counts


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  counts = _check_flags()
  if _CHILD.value:
    xla_config.force_host_devices(_CHILD.value)
    xla_config.use_recommended_cpu_flags()
    _child(_CHILD.value)
    return
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  out = common.run_folder(_OUT.value, "data_parallel")
  env = dict(os.environ)
  # Each child sets its own device count.
  flags_ = [f for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")]
  # XLA:CPU aborts a collective whose participants do not all arrive within
  # 40 s; forced host devices share the cores, and on a busy 2-core VM one
  # 2-device child was aborted so (its rerun passed). Wait longer.
  if not any(f.startswith("--xla_cpu_collective_call_terminate_timeout_seconds")
             for f in flags_):
    flags_.append("--xla_cpu_collective_call_terminate_timeout_seconds=600")
  env["XLA_FLAGS"] = " ".join(flags_)
  args = [a for a in sys.argv[1:] if not a.startswith(("--out", "--child"))]
  rows, skipped = [], []
  for n in counts:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.data_parallel",
                           f"--child={n}", *args], env=env, capture_output=True,
                          text=True)
    if proc.returncode:
      sys.exit(f"error: the {n}-device child failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skipped" in got:
      skipped.append(got["skipped"])
      print(f"{n} devices: skipped ({got['skipped']})", flush=True)
      continue
    rows += got["rows"]
    for r in got["rows"]:
      print(f"{n} devices, {r['cell']} {r['mode']} (batch {r['batch']}): "
            f"{r['step_s'] * 1e3:.1f} ms/step", flush=True)
  results = {"command": "python -m benchmarks.data_parallel " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "task": _TASK.value,
             "seq_len": _SEQ_LEN.value, "hidden": _HIDDEN.value,
             "batch_per_device": _BATCH_PER_DEVICE.value,
             "global_batch": _GLOBAL_BATCH.value, "steps": _STEPS.value,
             "rounds": _ROUNDS.value, "rows": efficiency(rows), "skipped": skipped}
  fig = figure(results, out)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results, fig))
  for r in results["rows"]:
    if "efficiency" in r and r["devices"] > 1:
      print(f"{r['cell']} {r['mode']} on {r['devices']} devices: {r['speedup']:.2f}x "
            f"one device, efficiency {r['efficiency']:.2f} per device")
  print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
  app.run(main)
