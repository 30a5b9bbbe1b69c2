r"""Training memory against sequence length: the plain runner against
``remat=K`` (gradient checkpointing in chunks of K steps).

For each T it compiles the gradient of an LSTM (``jax.grad`` of a loss on
the final state, as a many-to-one task, or on every output with
``--loss=all``) and reads XLA's temporary memory
(``memory_analysis().temp_size_in_bytes``); nothing runs, so T=65,536
takes seconds. Writes ``results.json``, ``report.md`` (the table) and
``remat_memory.png`` (memory against T, log-log).

``--train_steps=N`` also trains: for every T and setting, a child process
runs N jitted Adam steps on random data (the same loss) and reports its peak
resident memory (``ru_maxrss``: the whole process, parameters, inputs and
the JAX runtime included), the resident memory before the first step, and
the seconds per step after the first (which compiles).

Usage::

  python -m benchmarks.remat_memory                    # T = 1,024 ... 65,536
  python -m benchmarks.remat_memory --loss=all --lengths=1024,16384
  python -m benchmarks.remat_memory --lengths=4096,16384,65536 --train_steps=3
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

import rnn_zoo as rz
from benchmarks import common

_LENGTHS = flags.DEFINE_list("lengths", ["1024", "4096", "16384", "65536"],
                             "Sequence lengths T.")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch size B.")
_INPUT = flags.DEFINE_integer("input", 64, "Input size I.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size H.")
_CHUNKS = flags.DEFINE_list("chunks", ["0", "64", "sqrt"],
                            "remat settings: 0 (plain), a chunk size K, or sqrt (K = sqrt(T)).")
_LOSS = flags.DEFINE_enum("loss", "last", ["last", "all"],
                          "last: a loss on the final state; all: on every output.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/remat_memory/<timestamp>).")
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", 0, "Also train N Adam steps per T and setting, each in a child "
    "process, and report its peak resident memory (0: compile only).")
_CHILD = flags.DEFINE_string("child", None, "Internal: 'T,K': train and print JSON.")


def chunk_size(setting: str, T: int) -> int:
  """0 (plain), K, or sqrt(T) for ``setting``."""
  if setting == "sqrt":
    return max(1, int(T ** 0.5))
  try:
    k = int(setting)
  except ValueError:
    raise app.UsageError(f"--chunks must be ints >= 0 or 'sqrt', got {setting!r}") from None
  if k < 0:
    raise app.UsageError(f"--chunks must be ints >= 0 or 'sqrt', got {setting!r}")
  return k


def temp_mib(cell, params, B: int, T: int, I: int, remat: int, loss: str) -> float:
  xs = jax.ShapeDtypeStruct((B, T, I), jnp.float32)

  def f(p, xs):
    ys, carry = rz.unroll(cell, p, xs, remat=remat or False)
    return jnp.sum(carry.h ** 2) if loss == "last" else jnp.sum(ys ** 2)

  compiled = jax.jit(jax.grad(f)).lower(params, xs).compile()
  return compiled.memory_analysis().temp_size_in_bytes / 2 ** 20


def _rss_mib() -> float:
  """This process's resident memory now (Linux /proc), MiB."""
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def train_child(T: int, remat: int) -> dict:
  """``--train_steps`` Adam steps at length T; peak and starting RSS, s/step."""
  import optax  # pylint: disable=g-import-not-at-top
  B, I, H = _BATCH.value, _INPUT.value, _HIDDEN.value
  cell = rz.LSTM(H)
  params = cell.init(jax.random.key(0), I)
  opt = optax.adam(1e-3)
  opt_state = opt.init(params)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))

  def loss(p):
    ys, carry = rz.unroll(cell, p, xs, remat=remat or False)
    return jnp.mean(carry.h ** 2) if _LOSS.value == "last" else jnp.mean(ys ** 2)

  @jax.jit
  def step(p, s):
    value, g = jax.value_and_grad(loss)(p)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, value

  jax.block_until_ready(xs)
  start_mib = _rss_mib()
  times = []
  for _ in range(_TRAIN_STEPS.value):
    t = time.perf_counter()
    params, opt_state, value = jax.block_until_ready(step(params, opt_state))
    times.append(time.perf_counter() - t)
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {"peak_rss_mib": peak_mib, "start_rss_mib": start_mib,
          "first_step_s": times[0],
          "step_s": sum(times[1:]) / (len(times) - 1) if len(times) > 1 else None,
          "loss": float(value)}


def trained_row(T: int, setting: str) -> dict:
  args = [a for a in sys.argv[1:] if not a.startswith(("--out", "--child"))]
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.remat_memory",
       f"--child={T},{chunk_size(setting, T)}", *args],
      capture_output=True, text=True)
  if proc.returncode:
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
            else f"exit {proc.returncode}"}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TRAIN_STEPS.value < 0:
    raise app.UsageError(f"--train_steps must be >= 0, got {_TRAIN_STEPS.value}")
  if _CHILD.value:
    T, K = (int(v) for v in _CHILD.value.split(","))
    print(json.dumps(train_child(T, K)))
    return
  lengths = common.parse_lengths(_LENGTHS.value)
  for setting in _CHUNKS.value:
    chunk_size(setting, 1)
  out = common.run_folder(_OUT.value, "remat_memory")
  B, I, H = _BATCH.value, _INPUT.value, _HIDDEN.value
  cell = rz.LSTM(H)
  params = cell.init(jax.random.key(0), I)
  rows = []
  for T in lengths:
    row = {"T": T, "mib": {}}
    for setting in _CHUNKS.value:
      row["mib"][setting] = temp_mib(cell, params, B, T, I, chunk_size(setting, T), _LOSS.value)
    if _TRAIN_STEPS.value:
      row["trained"] = {s: trained_row(T, s) for s in _CHUNKS.value}
    rows.append(row)
    print(json.dumps(row), flush=True)
  results = {"command": "python -m benchmarks.remat_memory " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "B": B, "I": I, "H": H,
             "loss": _LOSS.value, "chunks": _CHUNKS.value,
             "train_steps": _TRAIN_STEPS.value, "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  name = lambda s: "plain" if s == "0" else ("remat=√T" if s == "sqrt" else f"remat={s}")
  L = ["# Training memory against T: plain runner vs remat", "",
       f"{results['date']}; {results['environment']['processor'] or results['environment']['machine']}, "
       f"jax {results['environment']['jax']}; LSTM H={H}, B={B}, I={I}; loss on "
       f"{'the final state' if _LOSS.value == 'last' else 'every output'}; XLA temporary "
       "memory of the compiled gradient (MiB).", "",
       "| T | " + " | ".join(name(s) for s in _CHUNKS.value) + " |",
       "|---:|" + "---:|" * len(_CHUNKS.value)]
  for row in rows:
    L.append(f"| {row['T']} | " + " | ".join(f"{row['mib'][s]:.1f}" for s in _CHUNKS.value) + " |")
  if _TRAIN_STEPS.value:
    L += ["", f"## Training ({_TRAIN_STEPS.value} Adam steps per cell, one child "
          "process each)", "",
          "Peak resident memory of the process (`ru_maxrss`, MiB: parameters, "
          "inputs, Adam state and the JAX runtime included), its resident memory "
          "before the first step, and seconds per step after the first (which "
          "compiles).", "",
          "| T | setting | peak RSS (MiB) | RSS before training | peak − before | s / step | first step s |",
          "|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
      for s_ in _CHUNKS.value:
        t = row["trained"][s_]
        if "error" in t:
          L.append(f"| {row['T']} | {name(s_)} | failed: {t['error']} | | | | |")
          continue
        step = f"{t['step_s']:.2f}" if t["step_s"] is not None else "—"
        L.append(f"| {row['T']} | {name(s_)} | {t['peak_rss_mib']:,.0f} | "
                 f"{t['start_rss_mib']:,.0f} | {t['peak_rss_mib'] - t['start_rss_mib']:,.0f} | "
                 f"{step} | {t['first_step_s']:.1f} |")
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for s in _CHUNKS.value:
    ax.loglog([r["T"] for r in rows], [r["mib"][s] for r in rows], marker="o", label=name(s))
  ax.set_xlabel("T")
  ax.set_ylabel("temporary memory (MiB)")
  ax.set_title(f"LSTM gradient, H={H}, B={B}")
  ax.legend()
  fig.tight_layout()
  fig.savefig(out / "remat_memory.png", dpi=110)
  plt.close(fig)
  L += ["", "![memory against T](remat_memory.png)"]
  common.write_report(out, L)


if __name__ == "__main__":
  app.run(main)
