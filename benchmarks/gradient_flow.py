r"""The gradient-flow benchmark: which cell vanishes, explodes, or learns.

For a grid of cells and sequence lengths it measures

1. at initialization: ``‖dL/dh_t‖`` against t for every cell (adding task,
   one batch; per layer for stacks), the spectral norm of ``dh_T/dh_t`` (power
   iteration), the largest singular value of the one-step Jacobian along the
   trajectory, and the recurrent weight's spectral radius;
2. training on the adding and copy tasks at each length with the same budget
   and optimizer (through ``rnn_zoo.training.train_and_evaluate``, like every
   experiment): loss curves against the no-memory baseline, the step at which
   each run beat the baseline by a clear margin / solved the task, and the
   per-step gradient norm with and without clipping;

and writes ``report.md`` (tables, the published results beside ours, one
paragraph per finding computed from the numbers), ``results.json`` and PNG
figures to a run folder.

Usage::

  python -m benchmarks.gradient_flow --preset=quick   # <= 5 min on 2 cores (make demo)
  python -m benchmarks.gradient_flow --preset=paper   # published settings; hours
  python -m benchmarks.gradient_flow --cells=lstm_fb1,gru --lengths=50,100

Presets, cells and what "solved" means are defined below; see
``rnn_zoo.data.synthetic`` for the tasks and baselines.
"""

from __future__ import annotations

import datetime
import json
import logging as pylogging
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

from rnn_zoo import xla_config

PRESETS = {
    # init_lengths: T for the at-initialization diagnostics.
    # train: (task, T, steps, learning rate) runs, the same for every cell.
    "quick": dict(init_lengths=(50, 200),
                  train=(("adding", 30, 500, 3e-3), ("copy", 10, 1500, 1e-2)),
                  hidden=32, batch=32, clip=1.0,
                  log_every=25, eval_every=50, eval_batches=2,
                  clip_ablation=("rnn_tanh", "lstm_fb1")),
    "paper": dict(init_lengths=(100, 200, 500, 1000),
                  train=(("adding", 100, 20000, 1e-3), ("adding", 200, 20000, 1e-3),
                         ("adding", 400, 20000, 1e-3), ("copy", 50, 20000, 1e-3),
                         ("copy", 100, 20000, 1e-3), ("copy", 200, 20000, 1e-3)),
                  hidden=128, batch=64, clip=1.0,
                  log_every=100, eval_every=500, eval_batches=8,
                  clip_ablation=("rnn_tanh", "rnn_tanh_orth", "irnn", "lstm_fb1")),
}

# name -> (label, config overrides on experiments/long_range/config.py)
CELLS = {
    "rnn_tanh": ("tanh RNN (default init)", dict(cell="rnn", recurrent_init="uniform")),
    "rnn_tanh_orth": ("tanh RNN (orthogonal)", dict(cell="rnn", recurrent_init="orthogonal")),
    "irnn": ("IRNN", dict(cell="irnn")),
    "lstm_fb0": ("LSTM (forget bias 0)", dict(cell="lstm", forget_bias=0.0)),
    "lstm_fb1": ("LSTM (forget bias 1)", dict(cell="lstm", forget_bias=1.0)),
    "lstm_chrono": ("LSTM (chrono)", dict(cell="lstm", chrono=True)),
    "gru": ("GRU", dict(cell="gru")),
    "lstm_2layer": ("2-layer LSTM", dict(cell="lstm", num_layers=2)),
}

# Published results to put beside ours (see shared REFERENCES.md).
PUBLISHED = [
    ("Arjovsky et al. 2016 (uRNN)", "copy", "tanh RNN sits on the baseline; LSTM "
     "beats it only at T=100 (about 0.145 vs 0.173 after 50K iterations)"),
    ("Arjovsky et al. 2016 (uRNN)", "adding", "LSTM beats the baseline up to T=400; "
     "tanh RNN and IRNN never do"),
    ("Li et al. 2018 (IndRNN)", "adding", "at T=100 every model but the tanh RNN "
     "converges; at T=1000 LSTM and IRNN fail"),
    ("Tallec & Ollivier 2018", "adding", "chrono init converges about 7x faster "
     "than forget bias 1 at T=750"),
    ("Arjovsky et al. 2016 (uRNN), figure", "at init", "T=1000: tanh RNN's "
     "‖dC/dh_t‖ rises from ~1e-14 at t=0 to 1 at t=T; LSTM falls below 1e-24 "
     "before t~450"),
]

_PRESET = flags.DEFINE_enum("preset", "quick", sorted(PRESETS), "Budget preset.")
_CELLS = flags.DEFINE_list("cells", None, f"Subset of {sorted(CELLS)}.")
_LENGTHS = flags.DEFINE_list(
    "lengths", None, "Override every T (init diagnostics and training) with these.")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/gradient_flow/<timestamp>).")
_STEPS = flags.DEFINE_integer("steps", None, "Override the training budget.")


def _say(msg: str) -> None:
  print(msg, flush=True)


# ---------------------------------------------------------------------------
# Configs.

def make_config(cell: str, task: str, T: int, preset: dict, steps: int = 1,
                lr: float = 1e-3, **extra):
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config()
  c.update(dict(task=task, seq_len=T, hidden_size=preset["hidden"],
                batch_size=preset["batch"], num_steps=steps,
                optimizer="adam", learning_rate=lr,
                clip_norm=preset["clip"], log_every=preset["log_every"],
                eval_every=preset["eval_every"], eval_batches=preset["eval_batches"],
                checkpoint_every=steps, keep_checkpoints=1))
  c.update(CELLS[cell][1])
  c.update(extra)
  return c


# ---------------------------------------------------------------------------
# 1. At initialization.

def _median_time(fn, rounds: int = 5) -> float:
  fn()  # compile
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return sorted(times)[len(times) // 2]


def init_diagnostics(cell: str, T: int, preset: dict) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo import gradflow  # pylint: disable=g-import-not-at-top

  config = make_config(cell, "adding", T, preset)
  w = workload.long_range(config)
  params = w.init_params(jax.random.key(config.seed))
  batch = w.train_batch(jax.random.key(1), 0)
  probes = tuple(jnp.zeros(s) for s in w.hidden_shapes(batch))

  @jax.jit
  def norms(params, batch):
    return gradflow.hidden_grad_norms(
        lambda pr: w.loss_fn(params, batch, jax.random.key(0), False,
                             hidden_probes=pr)[0], probes)

  per_layer = [np.asarray(n) for n in norms(params, batch)]
  # What the diagnostic costs: the probe gradient against one training
  # forward+backward (gradient of the same loss with respect to the params).
  grad = jax.jit(jax.grad(lambda p, b: w.loss_fn(p, b, jax.random.key(0), False)[0]))
  t_grad = _median_time(lambda: jax.block_until_ready(grad(params, batch)))
  t_probe = _median_time(lambda: jax.block_until_ready(norms(params, batch)))
  cell_obj, p0 = w.rnn_params(params)[0]
  xs = batch["inputs"][:8]
  positions = np.unique(np.linspace(0, T - 1, 12).astype(int))
  jac = jax.jit(lambda p, xs: gradflow.jacobian_norms(
      cell_obj, p, xs, positions, key=jax.random.key(2), num_iters=20))(p0, xs)
  sv_pos = np.unique(np.linspace(0, T - 1, 6).astype(int))
  sv = jax.jit(lambda p, xs: gradflow.step_jacobian_singular_values(
      cell_obj, p, xs[:2], sv_pos))(p0, xs)
  top = per_layer[0]
  # float32 underflows to 0 past ~1e-38: measure from the earliest step whose
  # norm is still representable and say so.
  nonzero = np.nonzero(top > 0)[0]
  t_min = int(nonzero[0]) if nonzero.size else T - 1
  jac_mean = np.asarray(jnp.mean(jac, axis=1))
  ok = np.nonzero(jac_mean > 0)[0]
  j_idx = int(ok[0]) if ok.size else len(positions) - 1
  steps_back = max(T - 1 - int(positions[j_idx]), 1)
  return {
      "cell": cell, "T": T,
      "train_grad_ms": t_grad * 1e3, "probe_grad_ms": t_probe * 1e3,
      "grad_norms": [n.tolist() for n in per_layer],
      # Orders of magnitude ‖dL/dh_t‖ loses from t = T-1 back to t_min
      # (0 unless the norm underflowed to 0 before t = 0).
      "decay_orders": float(np.log10(top[-1] / top[t_min])),
      "underflow_before": t_min if t_min > 0 else None,
      # Geometric-mean per-step factor of ‖dh_T/dh_t‖ (power iteration).
      "jacobian_factor": float(jac_mean[j_idx] ** (1.0 / steps_back)),
      "steps_in_the_past": int(gradflow.steps_in_the_past(jnp.asarray(top), 1e-2)),
      "jacobian_positions": positions.tolist(),
      "jacobian_norms": jac_mean.tolist(),
      "step_jacobian_positions": sv_pos.tolist(),
      "step_jacobian_max_sv": np.asarray(sv[..., 0].mean(-1)).tolist(),
      "step_jacobian_spectrum": np.asarray(sv[-1, 0]).tolist(),
      "weight_stats": gradflow.recurrent_weight_stats(cell_obj, p0),
  }


# ---------------------------------------------------------------------------
# 2. Training.

def read_jsonl(path):
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def train_run(cell: str, task: str, T: int, steps: int, lr: float, preset: dict,
              workdir: pathlib.Path, **extra) -> dict:
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo import training  # pylint: disable=g-import-not-at-top
  from rnn_zoo.data import synthetic  # pylint: disable=g-import-not-at-top

  config = make_config(cell, task, T, preset, steps=steps, lr=lr, **extra)
  t0 = time.perf_counter()
  final = training.train_and_evaluate(config, str(workdir), workload.long_range(config))
  seconds = time.perf_counter() - t0
  metrics = read_jsonl(workdir / "metrics.jsonl")
  trace = read_jsonl(workdir / "trace.jsonl")
  train = [m for m in metrics if m["split"] == "train"]
  evals = [m for m in metrics if m["split"] == "eval"]
  baseline = synthetic.baseline_loss(task, T)

  def first(pred):
    return next((m["step"] for m in evals if pred(m["loss"])), None)
  grad = [g for t in trace for g in t["grad_norm"]]
  return {
      "cell": cell, "task": task, "T": T, "steps": config.num_steps, "lr": lr,
      "clip_norm": config.clip_norm, "seconds": seconds,
      "baseline": baseline, "final_loss": final["loss"],
      "final_over_baseline": final["loss"] / baseline,
      "beats_step": first(lambda l: synthetic.beats_baseline(task, T, l)),
      "solved_step": first(lambda l: synthetic.is_solved(task, T, l)),
      "train_curve": [(m["step"], m["loss"]) for m in train],
      "eval_curve": [(m["step"], m["loss"]) for m in evals],
      "grad_trace": grad,
      "clipped_fraction": (sum(m["clipped_fraction"] for m in train) / len(train)) if train else 0.0,
      "extra": {k: v for k, v in final.items() if k not in ("loss", "step")},
  }


# ---------------------------------------------------------------------------
# Figures and the report.

def _clip_ablation_runs(results: dict) -> list[dict]:
  """The runs of the clipping ablation cells on its task, with and without."""
  task, T = results["clip_ablation_task"]
  return [r for r in results["train"] if r["cell"] in results["clip_ablation_cells"]
          and (r["task"], r["T"]) == (task, T)]


def figures(results: dict, out: pathlib.Path) -> list[str]:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = []

  def save(fig, name):
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    names.append(name)

  by_T = {}
  for d in results["init"]:
    by_T.setdefault(d["T"], []).append(d)
  for T, ds in sorted(by_T.items()):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d in ds:
      for layer, n in enumerate(d["grad_norms"]):
        label = CELLS[d["cell"]][0] + (f" layer {layer}" if len(d["grad_norms"]) > 1 else "")
        ax.semilogy(range(T), [max(v, 1e-40) for v in n], label=label,
                    linestyle="-" if layer == 0 else "--")
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖dL/dh_t‖ (mean over batch)")
    ax.set_title(f"Gradient norm at initialization, adding task, T={T}")
    ax.legend(fontsize=7)
    save(fig, f"grad_norm_at_init_T{T}.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d in ds:
      axes[0].semilogy(d["jacobian_positions"], [max(v, 1e-40) for v in d["jacobian_norms"]],
                       marker="o", ms=3, label=CELLS[d["cell"]][0])
      axes[1].plot(sorted(d["step_jacobian_spectrum"], reverse=True),
                   label=CELLS[d["cell"]][0])
    axes[0].set_xlabel("time step t")
    axes[0].set_ylabel("‖dh_T/dh_t‖_2 (power iteration)")
    axes[0].set_title(f"Jacobian norm to the last step, T={T}")
    axes[1].set_xlabel("index")
    axes[1].set_ylabel("singular value")
    axes[1].set_title("One-step Jacobian spectrum at the last step")
    axes[1].axhline(1.0, color="gray", lw=0.5)
    axes[0].legend(fontsize=7)
    save(fig, f"jacobians_at_init_T{T}.png")

  groups = {}
  for r in results["train"]:
    if r["clip_norm"] == 0:
      continue
    groups.setdefault((r["task"], r["T"]), []).append(r)
  for (task, T), rs in sorted(groups.items()):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rs:
      steps, losses = zip(*r["train_curve"]) if r["train_curve"] else ([], [])
      ax.semilogy(steps, losses, label=CELLS[r["cell"]][0])
    ax.axhline(rs[0]["baseline"], color="black", ls=":", label="no-memory baseline")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss" + (" (MSE)" if task == "adding" else " (cross-entropy, nats)"))
    ax.set_title(f"{task}, T={T}")
    ax.legend(fontsize=7)
    save(fig, f"loss_{task}_T{T}.png")

  ablation = _clip_ablation_runs(results)
  if ablation:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in ablation:
      tag = f"clip {r['clip_norm']:g}" if r["clip_norm"] else "no clipping"
      ax.semilogy(range(1, len(r["grad_trace"]) + 1), r["grad_trace"],
                  label=f"{CELLS[r['cell']][0]}, {tag}", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("global gradient norm before clipping")
    task, T = results["clip_ablation_task"]
    ax.set_title(f"Gradient norm per step, {task} T={T}")
    ax.legend(fontsize=7)
    save(fig, "grad_norm_trace_clipping.png")
  return names


def _fmt_step(s, budget):
  return f"{s}" if s is not None else f"not within {budget}"


def findings(results: dict) -> list[str]:
  """One paragraph per finding, each computed from this run's numbers."""
  out = []
  init = results["init"]
  if init:
    T = max(d["T"] for d in init)
    at = [d for d in init if d["T"] == T]
    vanish = [d for d in at if d["decay_orders"] > 3]
    explode = [d for d in at if d["decay_orders"] < -3]
    keep = [d for d in at if -3 <= d["decay_orders"] <= 3]
    txt = (f"**Vanishing and exploding at initialization (T={T}).** Going back from "
           f"the last step to the first, ‖dL/dh_t‖ falls by ")
    def orders(d):
      if d["underflow_before"] is None:
        return f"{d['decay_orders']:.1f}"
      return (f"more than {d['decay_orders']:.0f} (it underflows float32 to 0 "
              f"before t={d['underflow_before']})")
    txt += ", ".join(f"{orders(d)} orders of magnitude for {CELLS[d['cell']][0]}"
                     for d in sorted(at, key=lambda d: (d["underflow_before"] is None,
                                                       -d["decay_orders"])))
    txt += ". "
    if vanish:
      txt += ("It vanishes (more than 3 orders) for " +
              ", ".join(CELLS[d["cell"]][0] for d in vanish) + "; ")
    if explode:
      txt += ("It grows backwards (explodes, more than 3 orders) for " +
              ", ".join(CELLS[d["cell"]][0] for d in explode) + "; ")
    if keep:
      txt += ("It stays within 3 orders for " +
              ", ".join(CELLS[d["cell"]][0] for d in keep) + ". ")
    txt += ("Pascanu's steps in the past (how far back the gradient stays above "
            "1% of its value at the last step): " +
            ", ".join(f"{CELLS[d['cell']][0]} {d['steps_in_the_past']}" for d in at) + ".")
    out.append(txt)
    factor = lambda d: d["jacobian_factor"]
    out.append("**Why: the Jacobian product.** The spectral norm of dh_T/dh_t "
               "(power iteration) per step, i.e. its (T-1-t)-th root from the "
               "earliest t where it is representable, against the "
               "largest singular value of the recurrent weight: " +
               "; ".join(f"{CELLS[d['cell']][0]}: {factor(d):.3f} per step "
                         f"(W: {max(s['max_singular_value'] for s in d['weight_stats'].values()):.2f})"
                         for d in at) +
               ". A factor below 1 compounds into exponential vanishing over T "
               "steps (Pascanu et al. 2013: sigma_max(W) < 1/gamma suffices); "
               "the tanh's derivative pulls the plain RNN's factor below its "
               "weight's, while the LSTM's additive cell state and the GRU's "
               "update gate keep theirs near 1.")
    ratios = [d["probe_grad_ms"] / d["train_grad_ms"] for d in init]
    out.append("**What the diagnostic costs.** Computing ‖dL/dh_t‖ for every t "
               "(one backward pass with the probes) took "
               f"{min(ratios):.2f}–{max(ratios):.2f}x the time of the gradient "
               "with respect to the params (one training forward+backward) over "
               "all cells and lengths here: about one extra training step, since "
               "the probes ride on the fused backward loop, which has dL/dh_t at "
               "every step anyway.")
  train = [r for r in results["train"] if r["clip_norm"] != 0]
  for (task, T) in sorted({(r["task"], r["T"]) for r in train}):
    rs = [r for r in train if (r["task"], r["T"]) == (task, T)]
    budget = rs[0]["steps"]
    beat = [r for r in rs if r["beats_step"] is not None]
    solved = [r for r in rs if r["solved_step"] is not None]
    stuck = [r for r in rs if r["final_over_baseline"] > 0.9]
    txt = (f"**Which cells learn {task} at T={T} ({budget} steps).** ")
    txt += (("Beat the no-memory baseline by half: " + ", ".join(
        f"{CELLS[r['cell']][0]} (step {r['beats_step']})"
        for r in sorted(beat, key=lambda r: r["beats_step"])) + ". ") if beat
            else "No cell beat the baseline by half within the budget; closest: " +
            ", ".join(f"{CELLS[r['cell']][0]} {r['final_over_baseline']:.2f}x"
                      for r in sorted(rs, key=lambda r: r["final_over_baseline"])[:3]) +
            " the baseline. ")
    if solved:
      txt += "Solved (below 5% of the baseline): " + ", ".join(
          f"{CELLS[r['cell']][0]} (step {r['solved_step']})" for r in solved) + ". "
    if stuck:
      txt += "Still at the baseline (final loss > 90% of it): " + ", ".join(
          CELLS[r["cell"]][0] for r in stuck) + "."
    out.append(txt)
  for (task, T) in sorted({(r["task"], r["T"]) for r in train}):
    sel = {r["cell"]: r for r in train if (r["task"], r["T"]) == (task, T)
           and r["cell"] in ("lstm_fb0", "lstm_fb1", "lstm_chrono")}
    if len(sel) >= 2:
      out.append(f"**Forget-gate bias ({task}, T={T}).** Final loss over baseline: " +
                 ", ".join(f"{CELLS[c][0]} {r['final_over_baseline']:.3f} "
                           f"(beat the baseline by half: {_fmt_step(r['beats_step'], r['steps'])})"
                           for c, r in sorted(sel.items())) + ".")
  abl = _clip_ablation_runs(results)
  if abl:
    parts = []
    for r in abl:
      g = sorted(r["grad_trace"])
      if not g:
        continue
      med = g[len(g) // 2]
      tag = f"clipped at {r['clip_norm']:g}" if r["clip_norm"] else "unclipped"
      parts.append(f"{CELLS[r['cell']][0]} {tag}: median {med:.3g}, max {g[-1]:.3g} "
                   f"({g[-1] / max(med, 1e-30):.1f}x the median), final loss over "
                   f"baseline {r['final_over_baseline']:.3f}")
    out.append("**Gradient clipping.** Gradient norm before clipping, per step: " +
               "; ".join(parts) + ". Spikes far above the median are explosions; "
               "clipping bounds the update they cause, not the norm itself.")
  return out


def report_markdown(results: dict, figs: list[str]) -> str:
  L = ["# Gradient flow", "",
       f"Command: `{results['command']}`  ",
       f"Date: {results['date']}; preset `{results['preset']}`; "
       f"wall time {results['seconds']:.0f} s on {results['device']}.", "",
       "## Findings", ""]
  for p in findings(results):
    L += [p, ""]
  L += ["## At initialization", "",
        "| cell | T | orders of decay of ‖dL/dh_t‖ (t=T-1 → 0) | steps in the past (1%) | "
        "max singular value of W_hh | per-step factor of ‖dh_T/dh_t‖ | "
        "probe ‖dL/dh_t‖ ms / training grad ms |",
        "|---|---:|---:|---:|---:|---:|---:|"]
  for d in results["init"]:
    w = max(s["max_singular_value"] for s in d["weight_stats"].values())
    orders = (f"{d['decay_orders']:.1f}" if d["underflow_before"] is None else
              f"> {d['decay_orders']:.0f} (0 before t={d['underflow_before']})")
    L.append(f"| {CELLS[d['cell']][0]} | {d['T']} | {orders} | "
             f"{d['steps_in_the_past']} | {w:.2f} | {d['jacobian_factor']:.3f} | "
             f"{d['probe_grad_ms']:.1f} / {d['train_grad_ms']:.1f} "
             f"({d['probe_grad_ms'] / d['train_grad_ms']:.2f}x) |")
  L += ["", "## Training", "",
        "Same optimizer and budget for every cell (Adam, clip by global norm "
        f"{results['preset_values']['clip']}; steps and learning rate per task as "
        f"listed; batch {results['preset_values']['batch']}, hidden "
        f"{results['preset_values']['hidden']}). *Beat* = eval loss below half the "
        "no-memory baseline; *solved* = below 5% of it.", "",
        "| task | T | steps | lr | cell | clip | beat at step | solved at step | final loss | loss / baseline | seconds |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
  for r in results["train"]:
    L.append(f"| {r['task']} | {r['T']} | {r['steps']} | {r['lr']:g} | "
             f"{CELLS[r['cell']][0]} | {r['clip_norm']:g} | "
             f"{_fmt_step(r['beats_step'], r['steps'])} | "
             f"{_fmt_step(r['solved_step'], r['steps'])} | {r['final_loss']:.4g} | "
             f"{r['final_over_baseline']:.3f} | {r['seconds']:.0f} |")
  L += ["", "No-memory baselines: adding 0.167 (MSE of always predicting 1); copy "
        "10 ln 8 / (T+20).", "", "## Published results beside ours", "",
        "| source | task | finding |", "|---|---|---|"]
  for src, task, text in PUBLISHED:
    L.append(f"| {src} | {task} | {text} |")
  L += ["", "Our quick preset uses far shorter budgets and sequences than these "
        "papers (seconds per run on a CPU); `--preset=paper` runs their "
        "settings.", "", "## Figures", ""]
  for f in figs:
    L.append(f"![{f}]({f})")
  return "\n".join(L) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  preset = dict(PRESETS[_PRESET.value])
  cells = _CELLS.value or list(CELLS)
  bad = [c for c in cells if c not in CELLS]
  if bad:
    sys.exit(f"error: --cells must name cells from {sorted(CELLS)}, got {bad}")
  if _LENGTHS.value:
    try:
      lengths = [int(x) for x in _LENGTHS.value]
    except ValueError:
      sys.exit(f"error: --lengths must be positive ints, got {_LENGTHS.value}")
    if any(t < 2 for t in lengths):
      sys.exit(f"error: --lengths must be ints >= 2, got {lengths}")
    preset["init_lengths"] = tuple(lengths)
    by_task = {t[0]: t for t in preset["train"]}
    preset["train"] = tuple((task, T) + by_task[task][2:]
                            for task in ("adding", "copy") for T in lengths)
  if _STEPS.value is not None:
    if _STEPS.value <= 0:
      sys.exit(f"error: --steps must be positive, got {_STEPS.value}")
    preset["train"] = tuple(t[:2] + (_STEPS.value,) + t[3:] for t in preset["train"])
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "gradient_flow", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  # The training loop's own progress lines would drown ours.
  logging.set_verbosity(logging.WARNING)
  pylogging.getLogger("absl").setLevel(pylogging.WARNING)

  import jax  # pylint: disable=g-import-not-at-top
  t_start = time.perf_counter()
  results = {"command": "python -m benchmarks.gradient_flow " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "preset": _PRESET.value, "preset_values": preset,
             "device": f"{jax.devices()[0].device_kind} x{jax.device_count()}",
             "init": [], "train": []}
  ablation_cells = [c for c in preset["clip_ablation"] if c in cells]
  results["clip_ablation_cells"] = ablation_cells
  results["clip_ablation_task"] = list(preset["train"][0][:2])
  jobs = [("init", c, T) for T in preset["init_lengths"] for c in cells]
  jobs += [("train", c) + run for run in preset["train"] for c in cells]
  jobs += [("noclip", c) + tuple(preset["train"][0]) for c in ablation_cells]
  for i, job in enumerate(jobs, 1):
    elapsed = time.perf_counter() - t_start
    if job[0] == "init":
      _, c, T = job
      _say(f"[{i}/{len(jobs)} {elapsed:5.0f}s] at init: {CELLS[c][0]}, T={T}")
      results["init"].append(init_diagnostics(c, T, preset))
    else:
      kind, c, task, T, steps, lr = job
      extra = {"clip_norm": 0.0} if kind == "noclip" else {}
      tag = " without clipping" if extra else ""
      _say(f"[{i}/{len(jobs)} {elapsed:5.0f}s] training {CELLS[c][0]} on {task} "
           f"T={T} ({steps} steps){tag}")
      workdir = out / "runs" / f"{task}_T{T}_{c}{'_noclip' if extra else ''}"
      r = train_run(c, task, T, steps, lr, preset, workdir, **extra)
      _say(f"    final loss {r['final_loss']:.4g} = {r['final_over_baseline']:.3f} x baseline; "
           f"beat at {_fmt_step(r['beats_step'], r['steps'])}; {r['seconds']:.0f}s")
      results["train"].append(r)
  results["seconds"] = time.perf_counter() - t_start
  figs = figures(results, out)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results, figs))
  _say(f"done in {results['seconds']:.0f}s: {out / 'report.md'}")
  for p in findings(results):
    _say("\n" + p)


if __name__ == "__main__":
  xla_config.use_recommended_cpu_flags()
  app.run(main)
