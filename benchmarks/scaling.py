r"""Time and memory against sequence length: sequential cells against the
parallel scan of the linear recurrent cells (minGRU, minLSTM, LRU).

For each T it times, interleaved round by round, one jitted training
gradient (``grad`` of ``sum(ys * r)`` with respect to the params and the
inputs) and one forward pass of:

* ``lstm``, ``gru``: :func:`rnn_zoo.unroll` (sequential ``lax.scan``, fused
  backward); ``lstm[unroll=8]`` and ``lstm[remat=64]``: the same with
  ``unroll=8`` (compile time) and ``remat=64`` (memory);
* ``mingru[seq]``: minGRU through the same sequential loop
  (``impl="scan"``);
* ``mingru[par]``, ``minlstm[par]``: the associative scan (the default);
* ``mingru[log]``: the log-space scan (``impl="parallel_log"``);
* ``lru[seq]``, ``lru[par]``: the LRU through the sequential loop and its
  complex associative scan (``H/2`` complex modes);

and reads the compiled gradient's temporary memory from XLA
(``memory_analysis().temp_size_in_bytes``) and its compile time. The report
gives the tables, the crossover length from which the parallel scan wins,
and PNG plots of time and memory against T.

Usage::

  python -m benchmarks.scaling                          # T = 256 ... 16,384
  python -m benchmarks.scaling --lengths=256,1024 --batch=4 --hidden=64
"""

from __future__ import annotations

import datetime
import pathlib
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import rnn_zoo as rz
from rnn_zoo import xla_config

from benchmarks import common

IMPLS = {
    "lstm": (lambda H: rz.LSTM(H), {}),
    # The sequential runner's options: compile time against unroll, and
    # memory under gradient checkpointing, beside the parallel scans.
    "lstm[unroll=8]": (lambda H: rz.LSTM(H), {"unroll": 8}),
    "lstm[remat=64]": (lambda H: rz.LSTM(H), {"remat": 64}),
    "gru": (lambda H: rz.GRU(H), {}),
    "mingru[seq]": (lambda H: rz.MinGRU(H), {"impl": "scan"}),
    "mingru[par]": (lambda H: rz.MinGRU(H), {"impl": "parallel"}),
    "mingru[log]": (lambda H: rz.MinGRU(H), {"impl": "parallel_log"}),
    "minlstm[par]": (lambda H: rz.MinLSTM(H), {"impl": "parallel"}),
    "lru[seq]": (lambda H: rz.LRU(H, r_min=0.9, r_max=0.999), {"impl": "scan"}),
    "lru[par]": (lambda H: rz.LRU(H, r_min=0.9, r_max=0.999), {"impl": "parallel"}),
}

_LENGTHS = flags.DEFINE_list("lengths", ["256", "1024", "4096", "16384"],
                             "Sequence lengths T.")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch size B.")
_INPUT = flags.DEFINE_integer("input", 64, "Input size I.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size H.")
_IMPLS = flags.DEFINE_list("impls", list(IMPLS), f"Subset of {list(IMPLS)}.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds (after 2 warm-ups).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/scaling/<timestamp>).")


def make(impl: str, B: int, T: int, I: int, H: int):
  """``(train, forward, compiled train)``: callables that run to completion."""
  factory, kw = IMPLS[impl]
  cell = factory(H)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  r = jax.random.normal(jax.random.key(2), (B, T, H))

  # r is an argument, not a closed-over constant: a [B, T, H] constant
  # would be folded into the program and make compile time grow with T.
  def loss(p, x, r):
    return jnp.sum(rz.unroll(cell, p, x, **kw)[0] * r)

  t0 = time.perf_counter()
  train = jax.jit(jax.grad(loss, (0, 1))).lower(params, xs, r).compile()
  compile_s = time.perf_counter() - t0
  fwd = jax.jit(lambda p, x: rz.unroll(cell, p, x, **kw)[0]).lower(params, xs).compile()
  return (lambda: jax.block_until_ready(train(params, xs, r)),
          lambda: jax.block_until_ready(fwd(params, xs)), train, compile_s)


def crossover(rows: list[dict], fast: str, slow: str, key: str) -> int | None:
  """The smallest T from which ``fast`` beats ``slow`` at every longer T."""
  Ts = [r["T"] for r in rows if fast in r["impls"] and slow in r["impls"]]
  wins = [r["impls"][fast][key] < r["impls"][slow][key] for r in rows
          if fast in r["impls"] and slow in r["impls"]]
  for i, T in enumerate(Ts):
    if all(wins[i:]):
      return T
  return None


def report_markdown(results: dict, figs: list[str]) -> str:
  env = results["environment"]
  B, I, H = results["batch"], results["input"], results["hidden"]
  L = ["# Time and memory against sequence length", "",
       f"Command: `{results['command']}`  ",
       f"Date: {results['date']}; {env['device_kind']} ({env['cpu_count']} CPU cores, "
       f"{env['processor'] or env['machine']}), jax {env['jax']}; B={B}, I={I}, H={H}; "
       f"medians of {results['rounds']} interleaved rounds.", "",
       "| T | impl | train ms | forward ms | train ms / lstm | temp memory (MiB) | compile s |",
       "|---:|---|---:|---:|---:|---:|---:|"]
  for row in results["rows"]:
    base = row["impls"].get("lstm", {}).get("train_ms")
    for k, m in row["impls"].items():
      ratio = f"{m['train_ms'] / base:.2f}" if base else "—"
      L.append(f"| {row['T']} | {k} | {m['train_ms']:.1f} | {m['forward_ms']:.1f} | "
               f"{ratio} | {m['temp_mib']:.0f} | {m['compile_s']:.1f} |")
  L += ["", "## Crossover", ""]
  for fast, slow in (("mingru[par]", "mingru[seq]"), ("mingru[par]", "lstm"),
                     ("mingru[par]", "gru"), ("lru[par]", "lstm"),
                     ("lru[par]", "lru[seq]")):
    for key, what in (("train_ms", "training"), ("forward_ms", "forward")):
      c = crossover(results["rows"], fast, slow, key)
      if any(fast in r["impls"] and slow in r["impls"] for r in results["rows"]):
        L.append(f"- {what}: {fast} is faster than {slow} "
                 + (f"from T={c} on (every longer T measured)." if c else
                    "at no T from which it stays faster, within the lengths measured."))
  L += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figs]
  return "\n".join(L) + "\n"


def figures(results: dict, out: pathlib.Path) -> list[str]:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = []
  for key, label, name in (("train_ms", "training gradient (ms)", "scaling_time.png"),
                           ("temp_mib", "XLA temporary memory of the gradient (MiB)",
                            "scaling_memory.png")):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    impls = list(dict.fromkeys(k for r in results["rows"] for k in r["impls"]))
    for k in impls:
      pts = [(r["T"], r["impls"][k][key]) for r in results["rows"] if k in r["impls"]]
      ax.loglog(*zip(*pts), marker="o", label=k)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(label)
    ax.set_title(f"B={results['batch']}, H={results['hidden']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    names.append(name)
  return names


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lengths = common.parse_lengths(_LENGTHS.value)
  bad = [k for k in _IMPLS.value if k not in IMPLS]
  if bad:
    sys.exit(f"error: --impls must name implementations from {list(IMPLS)}, got {bad}")
  for name, v in (("batch", _BATCH.value), ("input", _INPUT.value),
                  ("hidden", _HIDDEN.value), ("rounds", _ROUNDS.value)):
    if v < 1:
      sys.exit(f"error: --{name} must be a positive int, got {v}")
  xla_config.use_recommended_cpu_flags()
  xla_config.use_recommended_malloc()
  out = common.run_folder(_OUT.value, "scaling")
  B, I, H = _BATCH.value, _INPUT.value, _HIDDEN.value
  rows = []
  for T in lengths:
    made = {k: make(k, B, T, I, H) for k in _IMPLS.value}
    fns = {}
    for k, (train, fwd, _, _) in made.items():
      fns[(k, "train")] = train
      fns[(k, "forward")] = fwd
    times = common.time_round_robin(fns, _ROUNDS.value)
    row = {"T": T, "impls": {}}
    for k, (_, _, compiled, compile_s) in made.items():
      mem = compiled.memory_analysis()
      row["impls"][k] = {
          "train_ms": float(np.median(times[(k, "train")])) * 1e3,
          "forward_ms": float(np.median(times[(k, "forward")])) * 1e3,
          "temp_mib": (mem.temp_size_in_bytes / 2**20) if mem is not None else float("nan"),
          "compile_s": compile_s}
    print(f"T={T}: " + ", ".join(f"{k} {m['train_ms']:.1f}/{m['forward_ms']:.1f} ms, "
                                 f"{m['temp_mib']:.0f} MiB" for k, m in row["impls"].items()),
          flush=True)
    rows.append(row)
  results = {"command": "python -m benchmarks.scaling " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "rounds": _ROUNDS.value,
             "batch": B, "input": I, "hidden": H, "rows": rows}
  figs = figures(results, out)
  common.write_report(out, report_markdown(results, figs), results)


if __name__ == "__main__":
  app.run(main)
