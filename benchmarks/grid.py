r"""How much faster the gradient-flow grid trains many small runs.

The same N runs (seeds × learning rates of one cell on the adding task) are
trained two ways, interleaved in one process:

* **one at a time** through ``rnn_zoo.training.train_and_evaluate`` (the
  experiment binaries' loop: a compile per run, a dispatch per step,
  checkpoints and logs), in a child process on one device as the binaries
  run on a CPU: the anchor;
* **grid**: ``rnn_zoo.training.grid.train_group``, all runs as one compiled
  program (vmap over runs, ``lax.scan`` over steps, the runs axis sharded
  over the devices: one per CPU core unless ``XLA_FLAGS`` says otherwise).

Both include compilation (what a user waits for), not the interpreter's
start. The report gives model steps per second (runs × steps / wall seconds)
and the ratio, and the largest gap between the two ways' final losses.

Usage::

  python -m benchmarks.grid                     # LSTM, 6 runs x 300 steps, T=100
  python -m benchmarks.grid --cell=gru --runs=12 --steps=500 --seq_len=50
"""

from __future__ import annotations

import datetime
import json
import logging as pylogging
import os
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

from rnn_zoo import xla_config

_CELL = flags.DEFINE_string("cell", "lstm", "Cell of every run (experiments' config.cell).")
_RUNS = flags.DEFINE_integer("runs", 6, "Runs (seeds; the learning rate alternates 3e-3/1e-2).")
_STEPS = flags.DEFINE_integer("steps", 300, "Train steps per run.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 100, "Adding task length T.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Hidden size.")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_DEVICES = flags.DEFINE_integer("devices", 0, "CPU devices (0: one per core).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/grid/<timestamp>).")
_ANCHOR_ONLY = flags.DEFINE_bool(
    "anchor_only", False, "Internal: run only the one-at-a-time anchor (on one "
    "device, as the experiment binaries run on a CPU) and print its timing as JSON.")


def configs():
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  out = []
  for i in range(_RUNS.value):
    c = lr_config.get_config()
    c.update(dict(task="adding", cell=_CELL.value, seq_len=_SEQ_LEN.value,
                  hidden_size=_HIDDEN.value, batch_size=_BATCH.value,
                  num_steps=_STEPS.value, seed=i // 2,
                  learning_rate=3e-3 if i % 2 == 0 else 1e-2,
                  eval_every=max(_STEPS.value // 4, 1), log_every=max(_STEPS.value // 4, 1),
                  eval_batches=2, checkpoint_every=_STEPS.value, keep_checkpoints=1))
    out.append(c)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name, flag in (("runs", _RUNS), ("steps", _STEPS), ("seq_len", _SEQ_LEN),
                     ("hidden", _HIDDEN), ("batch", _BATCH)):
    if flag.value < 1:
      sys.exit(f"error: --{name} must be positive, got {flag.value}")
  if _DEVICES.value < 0:
    sys.exit(f"error: --devices must be >= 0, got {_DEVICES.value}")
  if _ANCHOR_ONLY.value:
    logging.set_verbosity(logging.WARNING)
    pylogging.getLogger("absl").setLevel(pylogging.WARNING)
    import contextlib  # pylint: disable=g-import-not-at-top
    import io  # pylint: disable=g-import-not-at-top
    from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
    from rnn_zoo.training import grid  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
      t = time.perf_counter()
      with contextlib.redirect_stdout(io.StringIO()):  # the loop's "done" lines
        single = grid.train_one_at_a_time(configs(), workload.long_range, tmp)
      seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "loss": [r["loss"] for r in single]}))
    return
  # The anchor runs in a child process on one device (the experiment
  # binaries' default on a CPU); the grid here, one device per core.
  import subprocess  # pylint: disable=g-import-not-at-top
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  proc = subprocess.run([sys.executable, "-m", "benchmarks.grid", "--anchor_only"] +
                        [a for a in sys.argv[1:] if not a.startswith("--out")],
                        env=env, capture_output=True, text=True)
  if proc.returncode:
    sys.exit(f"error: the one-at-a-time anchor failed:\n{proc.stderr[-3000:]}")
  anchor = json.loads(proc.stdout.strip().splitlines()[-1])
  xla_config.force_host_devices(_DEVICES.value or os.cpu_count() or 1)
  logging.set_verbosity(logging.WARNING)
  pylogging.getLogger("absl").setLevel(pylogging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import grid  # pylint: disable=g-import-not-at-top

  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "grid", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  cs = configs()
  n, steps = len(cs), _STEPS.value
  t_single = anchor["seconds"]
  single = [{"loss": l} for l in anchor["loss"]]
  t = time.perf_counter()
  together = grid.train_group(cs, workload.long_range)
  t_grid = time.perf_counter() - t
  gap = max(abs(a["loss"] - b["final"]["loss"]) / abs(a["loss"])
            for a, b in zip(single, together))
  rows = {"one at a time (train_and_evaluate, 1 device)": t_single,
          f"grid (train_group, {jax.device_count()} devices)": t_grid}
  env = common.environment()
  results = {"command": "python -m benchmarks.grid " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "cell": _CELL.value, "runs": n, "steps": steps, "seq_len": _SEQ_LEN.value,
             "hidden": _HIDDEN.value, "batch": _BATCH.value,
             "seconds": rows, "model_steps_per_s": {k: n * steps / v for k, v in rows.items()},
             "speedup": t_single / t_grid, "max_relative_final_loss_gap": gap,
             "environment": env}
  L = ["# The grid against one run at a time", "",
       f"Command: `{results['command']}`  ",
       f"Date: {results['date']}; {env['cpu_count']} CPU cores ({env['processor'] or env['machine']}), "
       f"{len(env['devices'])} XLA devices ({env['device_kind']}); jax {env['jax']}.", "",
       f"{n} runs of {_CELL.value} (hidden {_HIDDEN.value}, batch {_BATCH.value}) on the adding "
       f"task T={_SEQ_LEN.value}, {steps} steps each, compilation included.", "",
       "| how | seconds | model steps / s | speed-up |", "|---|---:|---:|---:|"]
  for k, v in rows.items():
    L.append(f"| {k} | {v:.1f} | {n * steps / v:.1f} | {t_single / v:.2f}x |")
  L += ["", f"Largest relative gap between the two ways' final eval losses: {gap:.1e}. "
        "The runs are the same; vmapped and sharded matmuls sum in another "
        "order, and training amplifies float32 differences of that size over "
        "hundreds of steps once a run starts to learn (tests/training/"
        "test_grid.py checks agreement to 2e-4 on short runs)."]
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text("\n".join(L) + "\n")
  print("\n".join(L), flush=True)


if __name__ == "__main__":
  # Many small programs: compile time matters as much as run time.
  xla_config.use_recommended_cpu_flags(extra=xla_config.FAST_COMPILE_CPU_FLAGS)
  app.run(main)
