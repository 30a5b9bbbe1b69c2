r"""The gradient-flow benchmark: which cell vanishes, explodes, or learns.

For a grid of cells and sequence lengths it measures

1. at initialization, in float64: ``‖dL/dh_t‖`` against t for every cell
   (adding task, one batch; per layer for stacks), the spectral norm of ``dh_T/dh_t`` (power
   iteration), the largest singular value of the one-step Jacobian along the
   trajectory, and the recurrent weight's spectral radius;
2. training on the adding and copy tasks at each length, every cell with
   several seeds and the same budget and optimizer; the runs that share
   shapes (seeds, init variants, the clipping ablation) train at once as one
   compiled program (``rnn_zoo.training.grid``, which computes what
   ``train_and_evaluate`` computes run by run): loss curves against the
   no-memory baseline (mean and spread over seeds), the step at which each
   run beat the baseline by a clear margin / solved the task, the memory
   horizon during training, and the per-step gradient norm with and without
   clipping;

and writes ``report.md`` (tables, the published results beside ours, one
paragraph per finding computed from the numbers), ``results.json`` and PNG
figures to a run folder. The diagnostics and the groups are independent:
``--workers`` processes (one per CPU core by default on a CPU-only host)
compute them side by side, each saved as it finishes, so a rerun of the
same command skips what is done.

Usage::

  python -m benchmarks.gradient_flow --preset=quick   # <= 5 min on 2 cores (make demo)
  python -m benchmarks.gradient_flow --preset=paper   # published lengths, cut budget; < 2 h on 2 cores
  python -m benchmarks.gradient_flow --preset=linear  # minGRU, minLSTM, LRU vs LSTM/GRU at T=1000
  python -m benchmarks.gradient_flow --preset=copy_sweep  # copy T=100, 8 cells, each at its own rate; ~16 min
  python -m benchmarks.gradient_flow --preset=pixels_sweep  # 8x8 digits, each cell at its own rate
  python -m benchmarks.gradient_flow --cells=lstm_fb1,gru --lengths=50,100

Presets, cells and what "solved" means are defined below; see
``rnn_zoo.data.synthetic`` for the tasks and baselines.
"""

from __future__ import annotations

import datetime
import json
import logging as pylogging
import math
import os
import pathlib
import re
import sys
import time

from absl import app
from absl import flags
from absl import logging

from rnn_zoo import xla_config

# The cells a preset trains unless it names its own (or --cells does).
CLASSIC_CELLS = ("rnn_tanh", "rnn_tanh_orth", "irnn", "lstm_fb0", "lstm_fb1",
                 "lstm_chrono", "gru", "lstm_2layer")

PRESETS = {
    # init_lengths: T for the at-initialization diagnostics (float64).
    # train: the runs every cell makes, each with `seeds` seeds; the first
    # task is repeated without clipping for the clip_ablation cells (their
    # first clip_ablation_seeds seeds; default all).
    # steps_per_call: train steps per dispatch of the grid; diagnose_every:
    # ‖dL/dh_t‖ and the memory horizon during training.
    "quick": dict(cells=CLASSIC_CELLS + ("exprnn",), init_lengths=(1000,), seeds=3,
                  train=(dict(task="adding", T=100, steps=1000, lr=1e-2, cells=CLASSIC_CELLS),
                         # The uRNN paper's picture at T=100: an orthogonal
                         # recurrence (expRNN) solves copy within a few hundred
                         # steps, where the LSTM and the tanh RNN stay at the
                         # no-memory baseline (hidden 128 for all three: the
                         # ten symbols must fit in the state).
                         dict(task="copy", T=100, steps=400, lr=1e-3, hidden=128,
                              cells=("rnn_tanh", "lstm_fb1", "exprnn"))),
                  hidden=32, batch=32, clip=1.0,
                  log_every=25, eval_every=100, eval_batches=2,
                  steps_per_call=100, diagnose_every=200,
                  jacobian_positions=8, jacobian_iters=10, jacobian_examples=4,
                  clip_ablation=("rnn_tanh", "lstm_fb1"), clip_ablation_seeds=1),
    # A learning-rate sweep per cell (lrs: every rate trains, each seed, in
    # the cell's one vmapped group), chosen by the validation loss (a tenth
    # of the training images, never trained on), the test split reporting
    # the chosen rate's result: the pixel tasks for the cells whose verdict
    # the shared rate decided (the IRNN, dead at Adam 3e-3) and the LSTM and
    # tanh RNN beside them.
    "pixels_sweep": dict(
        cells=("rnn_tanh", "irnn", "lstm_fb1"), init_lengths=(64,), seeds=3,
        train=(dict(task="digits", T=64, steps=1500, lrs=(1e-4, 3e-4, 1e-3, 3e-3)),
               dict(task="permuted_digits", T=64, steps=1500,
                    lrs=(1e-4, 3e-4, 1e-3, 3e-3))),
        hidden=64, batch=32, clip=1.0, valid_fraction=0.1,
        log_every=50, eval_every=100, eval_batches=8,
        steps_per_call=100, diagnose_every=500,
        jacobian_positions=8, jacobian_iters=10, jacobian_examples=4,
        clip_ablation=(), clip_ablation_seeds=1),
    # Copy at T=100 for the cells built for long memory beside the gated
    # ones, each at the rate its own validation loss chooses from three
    # (every rate and seed of a cell in one vmapped group), at the quick
    # preset's copy setting: hidden 128, batch 32, a 400-step cap. (Swept
    # from 3e-4 to 3e-3 first, six cells chose 3e-3: moved up once.)
    "copy_sweep": dict(
        cells=("rnn_tanh", "lstm_fb1", "lstm_chrono", "gru", "lru", "exprnn",
               "indrnn_2layer", "cornn"),
        init_lengths=(1000,), seeds=3,
        train=(dict(task="copy", T=100, steps=400, lrs=(1e-3, 3e-3, 1e-2)),),
        hidden=128, batch=32, clip=1.0,
        log_every=25, eval_every=100, eval_batches=2,
        steps_per_call=100, diagnose_every=200,
        jacobian_positions=8, jacobian_iters=10, jacobian_examples=4,
        clip_ablation=(), clip_ablation_seeds=1),
    # Pixel-by-pixel digits and permuted digits (T=64) for every cell.
    "pixels": dict(init_lengths=(64,), seeds=3,
                   train=(dict(task="digits", T=64, steps=1500, lr=3e-3),
                          dict(task="permuted_digits", T=64, steps=1500, lr=3e-3)),
                   hidden=64, batch=32, clip=1.0,
                   log_every=50, eval_every=100, eval_batches=8,
                   steps_per_call=100, diagnose_every=500,
                   jacobian_positions=8, jacobian_iters=10, jacobian_examples=4,
                   clip_ablation=(), clip_ablation_seeds=1),
    # The linear recurrences against the gated cells where the LSTM's
    # memory runs out: adding at T=1000 and copy at T=200, same budget.
    "linear": dict(cells=("lstm_fb1", "lstm_chrono", "gru", "mingru", "minlstm", "lru"),
                   init_lengths=(1000,), seeds=3,
                   train=(dict(task="adding", T=1000, steps=1000, lr=3e-3),
                          dict(task="copy", T=200, steps=1000, lr=3e-3, hidden=64)),
                   hidden=32, batch=32, clip=1.0,
                   log_every=25, eval_every=100, eval_batches=2,
                   steps_per_call=100, diagnose_every=500,
                   jacobian_positions=8, jacobian_iters=10, jacobian_examples=4,
                   clip_ablation=(), clip_ablation_seeds=1),
    # The published settings (Le et al. 2015, Arjovsky et al. 2016, Tallec &
    # Ollivier 2018: adding T=100/200/400/750, copy T=100/200/500, hidden
    # 128) cut to fit 2 hours on 2 CPU cores: batch 32, a 500-2,500 step
    # budget (theirs: 10^4-10^5), every cell at T=100 and the cells the
    # published findings name beyond it (2 seeds at T=750), groups stopped
    # once every run has solved.
    "paper": dict(init_lengths=(100, 200, 500, 1000), seeds=3,
                  train=(dict(task="adding", T=100, steps=2000, lr=3e-3),
                         dict(task="adding", T=200, steps=2000, lr=3e-3,
                              cells=("rnn_tanh", "irnn", "lstm_fb1", "lstm_chrono", "gru")),
                         dict(task="adding", T=400, steps=1500, lr=3e-3,
                              cells=("rnn_tanh", "lstm_fb1", "lstm_chrono")),
                         dict(task="adding", T=750, steps=2500, lr=3e-3, seeds=2,
                              cells=("lstm_fb1", "lstm_chrono")),
                         dict(task="copy", T=100, steps=1000, lr=3e-3,
                              cells=("rnn_tanh", "lstm_fb1")),
                         dict(task="copy", T=200, steps=1000, lr=3e-3,
                              cells=("rnn_tanh", "lstm_fb1")),
                         dict(task="copy", T=500, steps=500, lr=3e-3,
                              cells=("rnn_tanh", "lstm_fb1"))),
                  hidden=128, batch=32, clip=1.0, stop_when_solved=True,
                  log_every=50, eval_every=100, eval_batches=4,
                  steps_per_call=100, diagnose_every=500,
                  jacobian_positions=12, jacobian_iters=10, jacobian_examples=4,
                  sensitivity_positions=(9, 29, 99, 299, 999), sensitivity_examples=8,
                  clip_ablation=("rnn_tanh", "lstm_fb1"), clip_ablation_seeds=1),
}

# Pixel-by-pixel classification (scikit-learn's 8x8 digits, T=64; MNIST,
# T=784): the baseline is chance, ln 10.
PIXEL_TASKS = ("digits", "permuted_digits", "mnist", "permuted_mnist")

# Added to any preset by --mnist_dir (Le et al. 2015's pixel MNIST and
# permuted MNIST, T=784; they train ~10^6 steps, this is a 2,000-step look),
# for the cells their findings name.
MNIST_RUNS = tuple(
    dict(task=task, T=784, steps=2000, lr=1e-3,
         cells=("rnn_tanh", "irnn", "lstm_fb1", "lstm_chrono", "gru"))
    for task in ("mnist", "permuted_mnist"))

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
    # Linear recurrences, trained with a parallel scan (docs/parallel_scan.md).
    "mingru": ("minGRU", dict(cell="mingru")),
    "minlstm": ("minLSTM", dict(cell="minlstm")),
    "lru": ("LRU", dict(cell="lru")),
    # The papers stack these cells: with a scalar input (the pixel tasks)
    # each unit of one minGRU layer sees the stream through four scalars
    # (its gate's and its candidate's weight and bias); a second layer reads
    # the first layer's 64-wide output.
    "mingru_2layer": ("2-layer minGRU", dict(cell="mingru", num_layers=2)),
    "lru_2layer": ("2-layer LRU", dict(cell="lru", num_layers=2)),
    # In the published block (models/sequence.py, block="residual_glu"):
    # LayerNorm, the recurrence, GELU, a GLU and a skip, per layer.
    "lru_block": ("LRU, 2 GLU blocks", dict(cell="lru", num_layers=2, block="residual_glu")),
    "mingru_block": ("minGRU, 2 GLU blocks",
                     dict(cell="mingru", num_layers=2, block="residual_glu")),
    # Built for long memory (rnn_zoo.cells.memory): an orthogonal recurrence
    # (the skew parameter at a tenth of the rate, as the paper trains it),
    # per-unit recurrences stacked as the IndRNN paper does, and coupled
    # oscillators.
    "exprnn": ("expRNN", dict(cell="exprnn", orthogonal_lr_scale=0.1)),
    "indrnn_2layer": ("2-layer IndRNN", dict(cell="indrnn", num_layers=2)),
    "cornn": ("coRNN", dict(cell="cornn")),
}
# The optimizer each cell's paper trained it with, printed beside the rate a
# sweep chose (docs/references: the uRNN paper's baselines, IndRNN, expRNN).
_URNN_BASELINES = "RMSprop 1e-3, batch 20, clip 1 (Arjovsky et al. 2016, its baselines)"
PUBLISHED_OPTIMIZERS = {
    "rnn_tanh": _URNN_BASELINES, "rnn_tanh_orth": _URNN_BASELINES,
    "irnn": _URNN_BASELINES, "lstm_fb1": _URNN_BASELINES,
    "indrnn_2layer": "Adam 2e-4 (Li et al. 2018)",
    "exprnn": "RMSprop 2e-4, 2e-5 on the skew-symmetric A "
              "(Lezcano-Casado & Martínez-Rubio 2019, copy)",
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
    ("Le et al. 2015; Arjovsky et al. 2016", "mnist", "pixel-by-pixel MNIST "
     "test error: LSTM 1.8%, IRNN 5.0%, uRNN 4.9%; permuted: LSTM 12%, IRNN "
     "18%, uRNN 8.6% (10^5-10^6 steps; run with --mnist_dir)"),
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
_SEEDS = flags.DEFINE_integer("seeds", None, "Override the seeds per cell and task.")
_MNIST_DIR = flags.DEFINE_string(
    "mnist_dir", None, "A folder with MNIST's four IDX files (or a tfds data dir "
    "with mnist prepared): adds pixel MNIST and permuted MNIST (T=784) runs.")
_DEVICES = flags.DEFINE_integer(
    "devices", 0, "CPU devices to spread each group's runs over, in each worker "
    "process (0: the cores over the workers). Ignored when XLA_FLAGS already "
    "forces a device count, or on GPU/TPU.")
_LRS = flags.DEFINE_list(
    "lrs", None, "Sweep these learning rates for every task of the preset "
    "(each cell's rates and seeds train in one group); the report chooses each "
    "cell's rate by its validation loss (pixel tasks: 10% of the training "
    "images held out) and reports the held-out result at that rate.")
_REPORT_FROM = flags.DEFINE_string(
    "report_from", None, "Trains nothing: writes DIR/report.md anew from "
    "DIR/results.json (or results.json.gz) with this version's findings and "
    "verdicts, keeping the report's figures and its hand-written note.")
_WORKERS = flags.DEFINE_integer(
    "workers", 0, "Processes that compute the diagnostics and train the groups "
    "side by side (0: one per CPU core on a CPU-only host, 1 with an accelerator; "
    "1: everything in this process).")


def _auto_workers(cores: int) -> int:
  """One worker per CPU core on a CPU-only host; 1 with an accelerator
  (its runs share the one device)."""
  import jax  # pylint: disable=g-import-not-at-top
  return cores if jax.default_backend() == "cpu" else 1


def _write_json(path: pathlib.Path, obj) -> None:
  """Whole or not at all: a run killed while saving leaves no half file for
  the next invocation to read back."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj))
  os.replace(tmp, path)


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


def _to_float64(tree):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jax.tree.map(lambda x: x.astype(jnp.float64)
                      if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def init_diagnostics(cell: str, T: int, preset: dict, precision: str = "float64") -> dict:
  """The diagnostics at initialization, computed in ``precision``: float64
  measures ‖dL/dh_t‖ down to ~1e-300, where float32 underflows to 0 below
  ~1e-38 (and to subnormals, with their lost digits, below 1e-38). The
  timings (what the probe gradient costs against a training gradient) are
  float32, as training runs."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo import gradflow  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top

  config = make_config(cell, "adding", T, preset)
  w = workload.long_range(config)
  params32 = w.init_params(jax.random.key(config.seed))
  batch32 = w.train_batch(jax.random.key(1), 0)

  def probe_norms(params, batch):
    probes = tuple(jnp.zeros(s, batch["inputs"].dtype)
                   for s in w.diagnostics.hidden_shapes(batch))
    return gradflow.hidden_grad_norms(
        lambda pr: w.loss_fn(params, batch, loop.eval_key(), False,
                             hidden_probes=pr)[0], probes)

  # What the diagnostic costs: the probe gradient against one training
  # forward+backward (gradient of the same loss with respect to the params).
  norms32 = jax.jit(probe_norms)
  grad = jax.jit(jax.grad(lambda p, b: w.loss_fn(p, b, loop.eval_key(), False)[0]))
  t_grad = _median_time(lambda: jax.block_until_ready(grad(params32, batch32)))
  t_probe = _median_time(lambda: jax.block_until_ready(norms32(params32, batch32)))
  positions = np.unique(np.linspace(0, T - 1, preset['jacobian_positions']).astype(int))
  sv_pos = np.unique(np.linspace(0, T - 1, 6).astype(int))
  with jax.enable_x64(precision == "float64"):
    params = _to_float64(params32) if precision == "float64" else params32
    batch = _to_float64(batch32) if precision == "float64" else batch32
    # The first recurrent layer's cell, params and inputs (after e.g. a
    # block's encoder and norm).
    cell_obj, p0, xs = w.diagnostics.first_layer(
        params, batch["inputs"][:preset['jacobian_examples']])

    @jax.jit
    def diagnostics(params, batch, p0, xs):  # one program: one compile
      jac = gradflow.jacobian_norms(cell_obj, p0, xs, positions, key=jax.random.key(2),
                                    num_iters=preset['jacobian_iters'])
      sv = gradflow.step_jacobian_singular_values(cell_obj, p0, xs[:2], sv_pos)
      return probe_norms(params, batch), jac, sv
    norms, jac, sv = diagnostics(params, batch, p0, xs)
    per_layer = [np.asarray(n, np.float64) for n in norms]
    jac_mean = np.asarray(jnp.mean(jac, axis=1), np.float64)
    steps_back_1pct = int(gradflow.steps_in_the_past(jnp.asarray(per_layer[0]), 1e-2))
    weight_stats = gradflow.recurrent_weight_stats(cell_obj, p0)
    sv = np.asarray(sv, np.float64)
  top = per_layer[0]
  # Measure from the earliest step whose norm is still representable (in
  # float64 that is every step for T <= 1000 here) and say when it is not.
  nonzero = np.nonzero(top > 0)[0]
  t_min = int(nonzero[0]) if nonzero.size else T - 1
  ok = np.nonzero(jac_mean > 0)[0]
  j_idx = int(ok[0]) if ok.size else len(positions) - 1
  steps_back = max(T - 1 - int(positions[j_idx]), 1)
  return {
      "cell": cell, "T": T, "precision": precision,
      "train_grad_ms": t_grad * 1e3, "probe_grad_ms": t_probe * 1e3,
      "grad_norms": [n.tolist() for n in per_layer],
      # Orders of magnitude ‖dL/dh_t‖ loses from t = T-1 back to t_min
      # (0 unless the norm underflowed to 0 before t = 0).
      "decay_orders": float(np.log10(top[-1] / top[t_min])),
      "underflow_before": t_min if t_min > 0 else None,
      # Geometric-mean per-step factor of ‖dh_T/dh_t‖ (power iteration).
      "jacobian_factor": float(jac_mean[j_idx] ** (1.0 / steps_back)),
      "steps_in_the_past": steps_back_1pct,
      "jacobian_positions": positions.tolist(),
      "jacobian_norms": jac_mean.tolist(),
      "step_jacobian_positions": sv_pos.tolist(),
      "step_jacobian_max_sv": sv[..., 0].mean(-1).tolist(),
      "step_jacobian_spectrum": sv[-1, 0].tolist(),
      "weight_stats": weight_stats,
  }


def sensitivity(cell: str, preset: dict) -> dict:
  """Zucchet & Orvieto's measure at initialization, in float64: how much the
  first layer's state at step t moves with its recurrent parameters, and
  with its initial state, for t in ``preset["sensitivity_positions"]`` (adding
  inputs; :func:`rnn_zoo.gradflow.parameter_sensitivity`)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo import gradflow  # pylint: disable=g-import-not-at-top

  positions = tuple(preset.get("sensitivity_positions", (9, 29, 99, 299)))
  config = make_config(cell, "adding", max(positions) + 1, preset)
  w = workload.long_range(config)
  params = w.init_params(jax.random.key(config.seed))
  batch = w.train_batch(jax.random.key(1), 0)
  with jax.enable_x64(True):
    cell_obj, p0, xs = w.diagnostics.first_layer(
        _to_float64(params),
        _to_float64(batch["inputs"][:preset.get("sensitivity_examples", 4)]))
    out = jax.jit(gradflow.parameter_sensitivity, static_argnums=(0, 3))(
        cell_obj, p0, xs, positions, jax.random.key(3))
    out = {k: np.asarray(v, np.float64).tolist() for k, v in out.items()}
  return {"cell": cell, "positions": list(positions), **out}


# ---------------------------------------------------------------------------
# 2. Training: every (cell, seed[, clip]) of a task as groups of runs that
# share shapes, each group one compiled program (rnn_zoo.training.grid).

def train_jobs(preset: dict, cells: list[str], seeds: int) -> list[dict]:
  """One entry per training run: the task settings, the cell, the seed and
  the clipping threshold (the ablation runs repeat the first task without)."""
  jobs = []
  for i, run in enumerate(preset["train"]):
    for cell in cells:
      if cell not in run.get("cells", cells):
        continue
      for lr in run.get("lrs", (run.get("lr"),)):
        for seed in range(min(seeds, run.get("seeds", seeds))):
          jobs.append(dict({k: v for k, v in run.items() if k not in ("cells", "seeds", "lrs")},
                           cell=cell, seed=seed, lr=lr, clip_norm=preset["clip"]))
          if (i == 0 and cell in preset["clip_ablation"]
              and seed < preset.get("clip_ablation_seeds", seeds)):
            jobs.append(dict(jobs[-1], clip_norm=0.0))
  return jobs


def task_baseline(task: str, T: int) -> float:
  """The loss of a model without memory: the synthetic tasks' own, and
  chance (ln 10, a uniform guess over the digits) for the pixel tasks."""
  from rnn_zoo.data import synthetic  # pylint: disable=g-import-not-at-top
  return math.log(10) if task in PIXEL_TASKS else synthetic.baseline_loss(task, T)


def beats(task: str, T: int, loss: float) -> bool:
  """Eval loss below half the baseline."""
  from rnn_zoo.data import synthetic  # pylint: disable=g-import-not-at-top
  if task in PIXEL_TASKS:
    return loss < synthetic.BEATS_FRACTION * task_baseline(task, T)
  return synthetic.beats_baseline(task, T, loss)


def solved(task: str, T: int, loss: float) -> bool:
  """Eval loss below 5% of the baseline."""
  from rnn_zoo.data import synthetic  # pylint: disable=g-import-not-at-top
  if task in PIXEL_TASKS:
    return loss < synthetic.SOLVED_FRACTION * task_baseline(task, T)
  return synthetic.is_solved(task, T, loss)


def sweeps(preset: dict) -> bool:
  """Whether the preset sweeps learning rates (then every group also
  evaluates on validation data, and the report chooses by it)."""
  return any("lrs" in run for run in preset["train"])


def job_config(job: dict, preset: dict):
  extra = {}
  if job["task"] in PIXEL_TASKS and preset.get("valid_fraction"):
    extra["valid_fraction"] = preset["valid_fraction"]
  return make_config(job["cell"], job["task"], job["T"], preset, steps=job["steps"],
                     lr=job["lr"], seed=job["seed"], clip_norm=job["clip_norm"],
                     hidden_size=job.get("hidden", preset["hidden"]),
                     data_dir=job.get("data_dir", ""), **extra)


def summarize_run(job: dict, r: dict, seconds: float, preset: dict) -> dict:
  """One run's row of results.json, from :func:`grid.train_group`'s result."""
  task, T = job["task"], job["T"]
  baseline = task_baseline(task, T)
  evals = [(s, m["loss"]) for s, m in r["eval"]]
  first = lambda pred: next((s for s, l in evals if pred(l)), None)
  every = preset["log_every"]
  train = r["train"]
  curve = [(train[k + every - 1][0],
            float(sum(l for _, l, _ in train[k:k + every]) / every))
           for k in range(0, len(train) - every + 1, every)]
  grads = [g for _, _, g in train]
  clip = job["clip_norm"]
  return {
      "cell": job["cell"], "seed": job["seed"], "task": task, "T": T,
      "steps": job["steps"], "steps_trained": r.get("steps", job["steps"]), "lr": job["lr"], "hidden": job.get("hidden", preset["hidden"]),
      "clip_norm": clip, "seconds": seconds,
      "baseline": baseline, "final_loss": r["final"]["loss"],
      "final_over_baseline": r["final"]["loss"] / baseline,
      "final_metrics": r["final"],
      # With a sweep: the loss on validation data (apart from training and
      # from the held-out data above), what the learning rate is chosen by.
      "final_valid_over_baseline": (r["final"]["valid_loss"] / baseline
                                    if "valid_loss" in r["final"] else None),
      "beats_step": first(lambda l: beats(task, T, l)),
      "solved_step": first(lambda l: solved(task, T, l)),
      "train_curve": curve, "eval_curve": evals, "grad_trace": grads,
      "clipped_fraction": (sum(g > clip for g in grads) / len(grads)) if clip else 0.0,
      "nonfinite_steps": r["nonfinite_steps"],
      # [(step, memory horizon)] and the ‖dL/dh_t‖ profile at each of them.
      "horizon": [(s, h) for s, _, h in r["diagnostics"]],
      "grad_norms_during_training": [(s, n[-1]) for s, n, _ in r["diagnostics"]],
  }


def _group_name(jobs: list[dict], members: list[int]) -> str:
  j0 = jobs[members[0]]
  cells = sorted({jobs[m]["cell"] for m in members}, key=list(CELLS).index)
  return f"{j0['task']}_T{j0['T']}_" + "+".join(cells)


def _group_path(out: pathlib.Path, jobs: list[dict], members: list[int]) -> pathlib.Path:
  return out / "groups" / f"{_group_name(jobs, members)}.json"


def _init_path(out: pathlib.Path, cell: str, T: int) -> pathlib.Path:
  return out / "init" / f"{cell}_T{T}.json"


def _sensitivity_path(out: pathlib.Path, cell: str) -> pathlib.Path:
  return out / "init" / f"sensitivity_{cell}.json"


def _group_done(jobs: list[dict], members: list[int], out: pathlib.Path) -> list[dict] | None:
  """The group's saved rows when an earlier invocation trained it."""
  path = _group_path(out, jobs, members)
  if not path.exists():
    return None
  saved = json.loads(path.read_text())
  if [(d["cell"], d["seed"], d["clip_norm"], d["lr"]) for d in saved] != [
      (jobs[m]["cell"], jobs[m]["seed"], jobs[m]["clip_norm"], jobs[m]["lr"])
      for m in members]:
    return None
  return saved


def train_groups(jobs: list[dict], preset: dict) -> list[list[int]]:
  """The groups of ``jobs`` that train together (indices into ``jobs``)."""
  from rnn_zoo.training import grid  # pylint: disable=g-import-not-at-top
  from experiments import common as experiments_common  # pylint: disable=g-import-not-at-top
  return grid.group_configs([job_config(j, preset) for j in jobs],
                            init_only_fields=experiments_common.INIT_ONLY_CELL_FIELDS)


def train_group(jobs: list[dict], members: list[int], preset: dict, out: pathlib.Path,
                label: str, t_start: float) -> list[dict]:
  """Trains one group (all its runs at once) and saves it under
  ``out/groups``; ``label`` and ``t_start`` (wall clock) for progress."""
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import grid  # pylint: disable=g-import-not-at-top

  j0 = jobs[members[0]]
  cells = sorted({jobs[m]["cell"] for m in members}, key=list(CELLS).index)
  name = _group_name(jobs, members)
  _say(f"[group {label} {time.time() - t_start:5.0f}s] "
       f"{j0['task']} T={j0['T']}: {len(members)} runs of "
       f"{', '.join(CELLS[c][0] for c in cells)} ({j0['steps']} steps) at once")
  t0 = time.perf_counter()
  stop = None
  if preset.get("stop_when_solved"):
    # Early stopping: once every run of the group has solved its task, the
    # rest of the budget would only refine solved runs.
    stop = lambda step, res, t=j0["task"], T=j0["T"]: all(
        solved(t, T, r["eval"][-1][1]["loss"]) for r in res)
  res = grid.train_group([job_config(jobs[m], preset) for m in members], workload.long_range,
                         steps_per_call=preset["steps_per_call"],
                         diagnose_every=preset["diagnose_every"], on_eval=stop,
                         validate=sweeps(preset))
  seconds = time.perf_counter() - t0
  done = [summarize_run(jobs[m], r, seconds / len(members), preset)
          for m, r in zip(members, res)]
  (out / "groups").mkdir(exist_ok=True)
  _write_json(_group_path(out, jobs, members), done)
  lines = []
  for cell in cells:
    for clip in sorted({d["clip_norm"] for d in done}, reverse=True):
      ds = [d for d in done if d["cell"] == cell and d["clip_norm"] == clip]
      if not ds:
        continue
      tag = "" if clip else " (no clipping)"
      lines.append(f"    {CELLS[cell][0]}{tag}: final loss / baseline " +
                   " ".join(f"{d['final_over_baseline']:.3f}" for d in ds) +
                   f"; beat {sum(d['beats_step'] is not None for d in ds)}/{len(ds)}")
  # One print, so that lines from other workers do not land in between.
  _say("\n".join([f"[group {label}] {name}: done in {seconds:.0f}s"] + lines))
  return done


def train_all(jobs: list[dict], preset: dict, out: pathlib.Path, t_start: float,
              fresh: frozenset = frozenset()) -> list[dict]:
  """Trains every job, group by group; each finished group is saved under
  ``out/groups`` and skipped when the same command runs again (resume;
  said unless its file is in ``fresh``, the ones workers just wrote)."""
  groups = train_groups(jobs, preset)
  rows: list[dict | None] = [None] * len(jobs)
  for g_idx, members in enumerate(groups, 1):
    label = f"{g_idx}/{len(groups)}"
    done = _group_done(jobs, members, out)
    if done is not None:
      path = _group_path(out, jobs, members)
      if str(path) not in fresh:
        _say(f"[group {label}] {path.stem}: done before, read from {path}")
    else:
      done = train_group(jobs, members, preset, out, label, t_start)
    for m, d in zip(members, done):
      rows[m] = d
  return rows


# ---------------------------------------------------------------------------
# Several worker processes (one per CPU core): the at-initialization
# diagnostics and the training groups are independent, so each worker takes
# the next one, computes it and saves it where a rerun of the command would
# read it back; the main process then reads everything back as on a resume.
# On 2 cores this beats spreading one group's runs over 2 devices: compiling
# (a third of the quick preset's time) runs on one thread, and a group's
# small per-step programs do not split well.

def _worker_init(xla_flags: str, devices: int) -> None:
  os.environ["XLA_FLAGS"] = xla_flags
  xla_config.force_host_devices(devices)
  logging.set_verbosity(logging.WARNING)
  pylogging.getLogger("absl").setLevel(pylogging.WARNING)


def compute_init(c: str, T: int, preset: dict, out: pathlib.Path, label: str,
                 t_start: float) -> dict:
  """:func:`init_diagnostics`, announced and saved for a rerun to read back."""
  _say(f"[{label} {time.time() - t_start:5.0f}s] at init (float64): {CELLS[c][0]}, T={T}")
  d = init_diagnostics(c, T, preset)
  _write_json(_init_path(out, c, T), d)
  return d


def compute_sensitivity(c: str, preset: dict, out: pathlib.Path, label: str,
                        t_start: float) -> dict:
  """:func:`sensitivity`, announced and saved for a rerun to read back."""
  _say(f"[{label} {time.time() - t_start:5.0f}s] parameter sensitivity at init "
       f"(float64): {CELLS[c][0]}")
  d = sensitivity(c, preset)
  _write_json(_sensitivity_path(out, c), d)
  return d


def _worker_item(item: tuple, preset: dict, jobs: list[dict], out: str, t_start: float) -> None:
  out = pathlib.Path(out)
  kind = item[0]
  if kind == "init":
    _, c, T, label, _ = item
    compute_init(c, T, preset, out, label, t_start)
  elif kind == "sensitivity":
    _, c, label, _ = item
    compute_sensitivity(c, preset, out, label, t_start)
  else:
    _, members, label, _ = item
    train_group(jobs, members, preset, out, label, t_start)


def _group_cost(jobs: list[dict], members: list[int], preset: dict) -> float:
  """A rough relative cost (for scheduling the longest groups first)."""
  j = jobs[members[0]]
  layers = CELLS[j["cell"]][1].get("num_layers", 1)
  gates = {"lstm": 4, "gru": 3}.get(CELLS[j["cell"]][1]["cell"], 1)
  hidden = j.get("hidden", preset["hidden"])
  return len(members) * layers * (1 + gates * hidden / 32) * j["T"] * j["steps"]


def run_in_workers(workers: int, devices: int, preset: dict, cells: list[str],
                   jobs: list[dict], out: pathlib.Path, t_start: float) -> frozenset:
  """Computes every missing result file with ``workers`` processes of
  ``devices`` CPU devices each, the longest groups first; returns the paths
  written."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  import multiprocessing  # pylint: disable=g-import-not-at-top

  groups = train_groups(jobs, preset)
  todo = []
  for g_idx, members in sorted(enumerate(groups, 1),
                               key=lambda g: -_group_cost(jobs, g[1], preset)):
    if _group_done(jobs, members, out) is None:
      todo.append(("group", members, f"{g_idx}/{len(groups)}",
                   _group_path(out, jobs, members)))
  init_jobs = [(c, T) for T in preset["init_lengths"] for c in cells]
  for i, (c, T) in enumerate(init_jobs, 1):
    if not _init_path(out, c, T).exists():
      todo.append(("init", c, T, f"{i}/{len(init_jobs)}", _init_path(out, c, T)))
  for i, c in enumerate(cells, 1):
    if not _sensitivity_path(out, c).exists():
      todo.append(("sensitivity", c, f"{i}/{len(cells)}", _sensitivity_path(out, c)))
  if not todo:
    return frozenset()
  _say(f"{len(todo)} items over {workers} worker processes ({devices} device(s) each)")
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=ctx, initializer=_worker_init,
      initargs=(os.environ.get("XLA_FLAGS", ""), devices)) as pool:
    futures = [pool.submit(_worker_item, item, preset, jobs, str(out), t_start)
               for item in todo]
    try:
      for f in concurrent.futures.as_completed(futures):
        f.result()  # re-raises a worker's error here
    except BaseException:
      pool.shutdown(wait=False, cancel_futures=True)
      raise
  return frozenset(str(item[-1]) for item in todo)


# ---------------------------------------------------------------------------
# Figures and the report.

def dead_run(r: dict) -> bool:
  """A run that stopped learning altogether: at its last measurement during
  training, ‖dL/dh_t‖ on the held-out batch is exactly 0 at every step but
  the last, so no gradient reaches the past (a ReLU cell whose units are
  all off). Its loss sits at the baseline, but not "at chance" in the sense
  of a cell that tries and fails: it is dead at its learning rate. A
  vanishing gradient decays step by step and is not exactly 0 one step
  back."""
  during = r.get("grad_norms_during_training") or []
  if not during:
    return False
  norms = during[-1][1]
  return len(norms) > 1 and all(v == 0 for v in norms[:-1])


# What one seed's run ended at (its final eval loss over the no-memory
# baseline, f): the categories a verdict is made of, best first.
OUTCOMES = ("solved", "beats", "partly", "at baseline", "dead", "diverged")
AT_BASELINE_FRACTION = 0.9


def run_outcome(r: dict) -> str:
  """One seed's outcome (:data:`OUTCOMES`), from its final eval loss over
  the baseline (and the dead-run test)."""
  from rnn_zoo.data import synthetic  # pylint: disable=g-import-not-at-top
  f = r["final_over_baseline"]
  if not math.isfinite(f):
    return "diverged"
  if dead_run(r):
    return "dead"
  if f < synthetic.SOLVED_FRACTION:
    return "solved"
  if f < synthetic.BEATS_FRACTION:
    return "beats"
  return "partly" if f < AT_BASELINE_FRACTION else "at baseline"


def verdict(outcomes: list[str]) -> str:
  """The outcome all seeds agree on, else ``"mixed"``: a verdict is stated
  only where the seeds agree, so none sits on a threshold that one seed
  crosses and another does not."""
  return outcomes[0] if outcomes and len(set(outcomes)) == 1 else "mixed"


def mean_ci95(values) -> tuple[float, float]:
  """The 95% Student-t confidence interval of the mean of ``values`` (the
  mean itself twice for a single value)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from scipy import stats  # pylint: disable=g-import-not-at-top
  v = np.asarray(values, np.float64)
  m = float(v.mean())
  if len(v) < 2:
    return m, m
  half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
  return m - half, m + half


def aggregate(rows: list[dict]) -> list[dict]:
  """The runs of each (task, T, cell, clip) over seeds: each seed's final
  loss over the baseline and outcome, mean, spread, the 95% interval of the
  mean, and the verdict (the outcome every seed shares, else "mixed")."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  out: dict = {}
  for r in rows:
    out.setdefault((r["task"], r["T"], r["cell"], r["clip_norm"], r["lr"]), []).append(r)
  agg = []
  for (task, T, cell, clip, _), rs in out.items():
    f_all = np.array([r["final_over_baseline"] for r in rs], np.float64)
    # A run whose loss turned NaN/Inf diverged: counted, left out of the stats.
    f = f_all[np.isfinite(f_all)] if np.isfinite(f_all).any() else f_all
    beat = sorted(r["beats_step"] for r in rs if r["beats_step"] is not None)
    solved = sorted(r["solved_step"] for r in rs if r["solved_step"] is not None)
    agg.append({"task": task, "T": T, "cell": cell, "clip_norm": clip,
                "steps": rs[0]["steps"],
                "steps_trained": max(r.get("steps_trained", r["steps"]) for r in rs),
                "lr": rs[0]["lr"], "hidden": rs[0]["hidden"],
                "seeds": len(rs), "diverged": int((~np.isfinite(f_all)).sum()),
                "dead": sum(dead_run(r) for r in rs),
                "per_seed": [(r["seed"], r["final_over_baseline"], run_outcome(r))
                             for r in sorted(rs, key=lambda r: r["seed"])],
                "verdict": verdict([run_outcome(r) for r in rs]),
                "final_ci95": mean_ci95(f),
                "final_mean": float(f.mean()),
                "final_std": float(f.std(ddof=1)) if len(f) > 1 else 0.0,
                "final_min": float(f.min()), "final_max": float(f.max()),
                "beat": len(beat), "beat_median": beat[len(beat) // 2] if beat else None,
                "solved": len(solved),
                "solved_median": solved[len(solved) // 2] if solved else None,
                "seconds_per_run": float(np.mean([r["seconds"] for r in rs]))})
    valid = [r.get("final_valid_over_baseline") for r in rs]
    if all(v is not None for v in valid):
      # A diverged run's NaN makes the rate's mean infinite: never chosen.
      agg[-1]["valid_mean"] = float(np.mean(
          [v if math.isfinite(v) else math.inf for v in valid]))
    accs = [r.get("final_metrics", {}).get("accuracy") for r in rs]
    if accs and all(a is not None for a in accs):
      agg[-1]["accuracy_mean"] = float(np.mean(accs))
      agg[-1]["accuracy_std"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
  return agg


def choose_rates(agg: list[dict]) -> list[dict]:
  """One row per (task, T, cell, clip): where several learning rates were
  swept, the one whose seeds reach the lowest mean loss on the validation
  data (the held-out result never chooses; ties go to the smaller rate),
  every swept row marked ``chosen`` True or False; else the only row."""
  by: dict = {}
  for a in agg:
    by.setdefault((a["task"], a["T"], a["cell"], a["clip_norm"]), []).append(a)
  out = []
  for rows in by.values():
    if len(rows) > 1:
      missing = [a["lr"] for a in rows if "valid_mean" not in a]
      if missing:
        raise ValueError(f"rates {missing} of {rows[0]['cell']} on {rows[0]['task']} "
                         "have no validation loss to choose by")
      best = min(rows, key=lambda a: (a["valid_mean"], a["lr"]))
      for a in rows:
        a["chosen"] = a is best
      rows = [best]
    out.append(rows[0])
  return out


def _clip_ablation_runs(results: dict) -> list[dict]:
  """Seed 0 of the clipping ablation cells on its task, with and without."""
  task, T = results["clip_ablation_task"]
  return [r for r in results["train"] if r["cell"] in results["clip_ablation_cells"]
          and (r["task"], r["T"]) == (task, T) and r["seed"] == 0]


def figures(results: dict, out: pathlib.Path) -> list[str]:
  """The report's PNGs into ``out``; their file names."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = []

  def save(fig, name):
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    names.append(name)

  _figures_at_init(results, plt, save)
  if results.get("sensitivity"):
    _figure_sensitivity(results, plt, save)
  _figures_training(results, plt, save)
  if _clip_ablation_runs(results):
    _figure_clipping(results, plt, save)
  return names


def _figures_at_init(results: dict, plt, save) -> None:
  """Per length: ‖dL/dh_t‖ at init; the Jacobian norms and spectrum."""
  by_T = {}
  for d in results["init"]:
    by_T.setdefault(d["T"], []).append(d)
  for T, ds in sorted(by_T.items()):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d in ds:
      for layer, n in enumerate(d["grad_norms"]):
        label = CELLS[d["cell"]][0] + (f" layer {layer}" if len(d["grad_norms"]) > 1 else "")
        ax.semilogy(range(T), [max(v, 1e-320) for v in n], label=label,
                    linestyle="-" if layer == 0 else "--")
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖dL/dh_t‖ (mean over batch)")
    ax.set_title(f"Gradient norm at initialization, adding task, T={T} ({ds[0]['precision']})")
    ax.legend(fontsize=7)
    save(fig, f"grad_norm_at_init_T{T}.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d in ds:
      axes[0].semilogy(d["jacobian_positions"], [max(v, 1e-320) for v in d["jacobian_norms"]],
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


def _figure_sensitivity(results: dict, plt, save) -> None:
  """Sensitivity to the recurrent parameters against t."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for d in results["sensitivity"]:
    t = [p + 1 for p in d["positions"]]
    line, = ax.loglog(t, d["recurrent"], marker="o", ms=3, label=CELLS[d["cell"]][0])
    ax.loglog(t, [max(v, 1e-320) for v in d["initial_state"]], ls="--",
              color=line.get_color(), lw=0.8)
  ax.set_xlabel("steps t")
  ax.set_ylabel("‖d(v·h_t)/dθ_rec‖ (solid), ‖d(v·h_t)/dh_0‖ (dashed)")
  ax.set_title("Sensitivity to the recurrent parameters at init (float64)")
  ax.legend(fontsize=7)
  save(fig, "parameter_sensitivity_at_init.png")


def _figures_training(results: dict, plt, save) -> None:
  """Per task and length: eval loss over the baseline, the memory horizon."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups = {}
  for r in results["train"]:
    if r["clip_norm"] == 0:
      continue
    groups.setdefault((r["task"], r["T"]), {}).setdefault(r["cell"], []).append(r)
  for (task, T), by_cell in sorted(groups.items()):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cell, rs in by_cell.items():
      steps = [s for s, _ in rs[0]["eval_curve"]]
      ys = np.array([[l / r["baseline"] for _, l in r["eval_curve"]] for r in rs])
      line, = ax.semilogy(steps, ys.mean(0), label=f"{CELLS[cell][0]} ({len(rs)} seeds)")
      ax.fill_between(steps, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)
    ax.axhline(1.0, color="black", ls=":", label="no-memory baseline")
    ax.axhline(0.5, color="gray", ls="--", lw=0.7, label="beats the baseline by half")
    ax.set_xlabel("training step")
    ax.set_ylabel("eval loss / baseline (mean; band: min to max over seeds)")
    ax.set_title(f"{task}, T={T}")
    ax.legend(fontsize=7)
    save(fig, f"loss_{task}_T{T}.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for cell, rs in by_cell.items():
      if not rs[0]["horizon"]:
        continue
      steps = [s for s, _ in rs[0]["horizon"]]
      hs = np.array([[h for _, h in r["horizon"]] for r in rs])
      line, = ax.plot(steps, hs.mean(0), marker="o", ms=3, label=CELLS[cell][0])
      ax.fill_between(steps, hs.min(0), hs.max(0), color=line.get_color(), alpha=0.15)
      drawn = True
    if drawn:
      ax.set_xlabel("training step")
      ax.set_ylabel("steps in the past with ‖dL/dh_t‖ ≥ 1% of ‖dL/dh_T‖")
      ax.set_title(f"Memory horizon during training, {task} T={T}")
      ax.legend(fontsize=7)
      save(fig, f"horizon_{task}_T{T}.png")
    else:
      plt.close(fig)


def _figure_clipping(results: dict, plt, save) -> None:
  """The clipping ablation's gradient norm per step."""
  ablation = _clip_ablation_runs(results)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in ablation:
    tag = f"clip {r['clip_norm']:g}" if r["clip_norm"] else "no clipping"
    ax.semilogy(range(1, len(r["grad_trace"]) + 1), r["grad_trace"],
                label=f"{CELLS[r['cell']][0]}, {tag}", lw=0.8)
  ax.set_xlabel("training step")
  ax.set_ylabel("global gradient norm before clipping")
  task, T = results["clip_ablation_task"]
  ax.set_title(f"Gradient norm per step, {task} T={T} (seed 0)")
  ax.legend(fontsize=7)
  save(fig, "grad_norm_trace_clipping.png")


def _train_seconds(results: dict) -> float:
  """The groups' training time: each run's row holds its group's wall time
  over the group's runs."""
  return float(sum(r["seconds"] for r in results["train"]))


def _max_sv(d: dict) -> str:
  """The largest singular value over the blocks of W_hh ("none" for the
  cells without a recurrent matrix)."""
  sv = [s["max_singular_value"] for s in d["weight_stats"].values()]
  return f"{max(sv):.2f}" if sv else "none (diagonal)"


def _fmt_step(s, budget):
  return f"{s}" if s is not None else f"not within {budget}"


def _fmt_count(k, n, median):
  return f"{k}/{n}" + (f" (median step {median})" if k else "")


def findings(results: dict) -> list[str]:
  """One paragraph per finding, each computed from this run's numbers."""
  every = aggregate(results["train"])
  agg = [a for a in choose_rates(every) if a["clip_norm"] != 0]
  return (_findings_at_init(results["init"])
          + _findings_sweep(every)
          + _finding_sensitivity(results.get("sensitivity") or [])
          + _findings_who_learns(agg)
          + _findings_forget_bias(agg)
          + _findings_horizon(results["train"])
          + _finding_clipping(results))


def _findings_at_init(init: list) -> list[str]:
  """Vanishing/exploding at initialization, the Jacobian factor, the cost."""
  if not init:
    return []
  out = []
  T = max(d["T"] for d in init)
  at = [d for d in init if d["T"] == T]
  vanish = [d for d in at if d["decay_orders"] > 3]
  explode = [d for d in at if d["decay_orders"] < -3]
  keep = [d for d in at if -3 <= d["decay_orders"] <= 3]
  txt = (f"**Vanishing and exploding at initialization (T={T}, "
         f"{at[0]['precision']}).** Going back from the last step to the first, "
         "‖dL/dh_t‖ falls by ")
  def orders(d):
    if d["underflow_before"] is None:
      return f"{d['decay_orders']:.1f}"
    return (f"more than {d['decay_orders']:.0f} (it underflows {d['precision']} "
            f"to 0 before t={d['underflow_before']})")
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
  under = [d for d in at if d["underflow_before"] is not None]
  txt += ("Every curve is measured down to its true value (nothing underflowed). "
          if not under else "")
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
                       f"(W: {_max_sv(d)})"
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
             "all cells and lengths here (float32): about one extra training "
             "step, since the probes ride on the fused backward loop, which has "
             "dL/dh_t at every step anyway.")
  return out


def _finding_sensitivity(sens: list) -> list[str]:
  """Zucchet & Orvieto's sensitivity to the recurrent parameters."""
  if not sens:
    return []
  out = []
  t0, t1 = sens[0]["positions"][0] + 1, sens[0]["positions"][-1] + 1
  grow = lambda d: d["recurrent"][-1] / d["recurrent"][0]
  out.append(
      f"**Sensitivity to the recurrent parameters (Zucchet & Orvieto 2024).** "
      f"At initialization (float64), the norm of d(v·h_t)/dθ_rec from t={t0} to "
      f"t={t1} (a random readout v, root mean square over examples) changed by "
      + ", ".join(f"{grow(d):.3g}× for {CELLS[d['cell']][0]}"
                  for d in sorted(sens, key=grow, reverse=True))
      + f"; meanwhile d(v·h_t)/dh_0 at t={t1} was "
      + ", ".join(f"{d['initial_state'][-1]:.1e} ({CELLS[d['cell']][0]})"
                  for d in sorted(sens, key=grow, reverse=True))
      + ". A state that keeps its past (initial-state gradient far from 0) "
        "accumulates sensitivity to the recurrent weights over t; one that "
        "forgets does not, which is the paper's point: long memory makes the "
        "loss sharp in the recurrent parameters without any exploding "
        "hidden-state gradient.")
  return out


_VERDICT_LEAD = {
    "solved": "Solved (final eval loss below 5% of the baseline) in every seed",
    "beats": "Beat the baseline by half in every seed (final below 50% of it, "
             "not below 5%)",
    "partly": "Below the baseline but not by half in every seed (50–90% of it)",
    "at baseline": "At or above the baseline in every seed (final at 90% of it or more)",
    "diverged": "Diverged in every seed at its learning rate (the loss turned NaN/Inf)",
}


def _mean_and_ci(a: dict) -> str:
  lo, hi = a["final_ci95"]
  return f"{a['final_mean']:.2f}, 95% CI {lo:.2f}–{hi:.2f}"


def _seed_values(a: dict) -> str:
  return ", ".join(f"{f:.3f} {o}" for _, f, o in a["per_seed"])


def _findings_who_learns(agg: list) -> list[str]:
  """Per task and length: the verdict of every cell (the outcome its seeds
  share), and the cells whose seeds disagree as "mixed" with their values."""
  out = []
  for (task, T) in sorted({(a["task"], a["T"]) for a in agg}):
    rs = [a for a in agg if (a["task"], a["T"]) == (task, T)]
    budget, n = rs[0]["steps"], rs[0]["seeds"]
    txt = (f"**Which cells learn {task} at T={T} ({budget} steps, a cap: every "
           f"run stops there, solved or not; {n} seeds each).** ")
    for outcome, lead in _VERDICT_LEAD.items():
      sel = [a for a in rs if a["verdict"] == outcome]
      if not sel:
        continue
      if outcome == "solved":
        items = [f"{CELLS[a['cell']][0]} (median step {a['solved_median']} to "
                 "first reach it)" for a in sorted(
                     sel, key=lambda a: a["solved_median"] or budget)]
      elif outcome == "diverged":
        items = [f"{CELLS[a['cell']][0]} (lr {a['lr']:g})" for a in sel]
      else:
        items = [f"{CELLS[a['cell']][0]} ({_mean_and_ci(a)})"
                 for a in sorted(sel, key=lambda a: a["final_mean"])]
      txt += f"{lead}: " + ", ".join(items) + ". "
    dead = [a for a in rs if a["verdict"] == "dead"]
    if dead:
      txt += ("Dead at its learning rate in every seed (by the end of training "
              "‖dL/dh_t‖ is exactly 0 at every step but the last: no gradient "
              "reaches the past, so it is not learning at all, which says nothing "
              "of the cell at another rate): " +
              ", ".join(f"{CELLS[a['cell']][0]} (lr {a['lr']:g})" for a in dead) + ". ")
    mixed = [a for a in rs if a["verdict"] == "mixed"]
    if mixed:
      txt += ("Mixed, no verdict (the seeds disagree; final loss over the "
              "baseline per seed): " + "; ".join(
                  f"{CELLS[a['cell']][0]} ({_seed_values(a)})" for a in mixed) + ". ")
    if not any(o in ("solved", "beats") for a in rs for _, _, o in a["per_seed"]):
      txt += ("No seed of any cell beat the baseline by half within the budget; "
              "closest: " + ", ".join(
                  f"{CELLS[a['cell']][0]} {a['final_mean']:.2f}x"
                  for a in sorted(rs, key=lambda a: a["final_mean"])[:3]) +
              " the baseline (mean over seeds). ")
    if task in PIXEL_TASKS and all("accuracy_mean" in a for a in rs):
      txt += ("Test accuracy (mean ± std over seeds; chance 0.10): " + ", ".join(
          f"{CELLS[a['cell']][0]} {a['accuracy_mean']:.3f} ± {a['accuracy_std']:.3f}"
          + (" (dead)" if a in dead else "")
          for a in sorted(rs, key=lambda a: -a["accuracy_mean"])) + ". ")
    out.append(txt.rstrip())
  return out


def _verdict_text(a: dict) -> str:
  return (f"mixed ({_seed_values(a)})" if a["verdict"] == "mixed"
          else a["verdict"])


def _findings_sweep(every: list) -> list[str]:
  """The learning rate each cell got where rates were swept, and what the
  others did (call it after :func:`choose_rates` marked them)."""
  swept = [a for a in every if "chosen" in a and a["clip_norm"] != 0]
  out = []
  for (task, T) in sorted({(a["task"], a["T"]) for a in swept}):
    parts = []
    for cell in CELLS:
      rows = sorted((a for a in swept if (a["task"], a["T"], a["cell"]) == (task, T, cell)),
                    key=lambda a: a["lr"])
      if not rows:
        continue
      best = next(a for a in rows if a["chosen"])
      others = "; ".join(f"lr {a['lr']:g} {_verdict_text(a)}" for a in rows if not a["chosen"])
      published = (f"; its paper: {PUBLISHED_OPTIMIZERS[cell]}"
                   if cell in PUBLISHED_OPTIMIZERS else "")
      edge = ""
      if best is rows[-1] or best is rows[0]:
        edge = (f", the {'largest' if best is rows[-1] else 'smallest'} rate swept: "
                f"a {'larger' if best is rows[-1] else 'smaller'} one may do better")
      parts.append(f"{CELLS[cell][0]} lr {best['lr']:g}{edge} (validation {best['valid_mean']:.3f} "
                   f"of the baseline; test verdict {_verdict_text(best)}; at the other "
                   f"rates: {others}{published})")
    out.append(f"**Learning rates chosen on validation data ({task}, T={T}).** "
               "Each cell trained at every rate of the sweep (its seeds at all rates "
               "in one vmapped group); the rate with the lowest mean validation loss "
               "is the one every other finding reports, on the held-out data: " +
               "; ".join(parts) + ".")
  return out


def _findings_forget_bias(agg: list) -> list[str]:
  """The LSTM's forget-gate bias variants side by side."""
  out = []
  for (task, T) in sorted({(a["task"], a["T"]) for a in agg}):
    sel = [a for a in agg if (a["task"], a["T"]) == (task, T)
           and a["cell"] in ("lstm_fb0", "lstm_fb1", "lstm_chrono")]
    if len(sel) >= 2:
      out.append(f"**Forget-gate bias ({task}, T={T}).** Final loss over baseline "
                 "(mean ± std over seeds), seeds that beat the baseline by half "
                 "and that solved it: " +
                 "; ".join(f"{CELLS[a['cell']][0]} {a['final_mean']:.3f} ± "
                           f"{a['final_std']:.3f}, beat {_fmt_count(a['beat'], a['seeds'], a['beat_median'])}, "
                           f"solved {_fmt_count(a['solved'], a['seeds'], a['solved_median'])}, "
                           f"verdict: {_verdict_text(a)}"
                           for a in sel) + ".")
  return out


def _findings_horizon(train: list) -> list[str]:
  """The memory horizon at the start and the end of training."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = []
  rows = [r for r in train if r["clip_norm"] != 0 and r["horizon"]]
  for (task, T) in sorted({(r["task"], r["T"]) for r in rows}):
    parts = []
    for cell in CELLS:
      rs = [r for r in rows if (r["task"], r["T"], r["cell"]) == (task, T, cell)]
      if not rs:
        continue
      h0 = np.mean([r["horizon"][0][1] for r in rs])
      h1 = np.mean([r["horizon"][-1][1] for r in rs])
      parts.append(f"{CELLS[cell][0]} {h0:.0f} → {h1:.0f}")
    out.append(f"**Memory horizon during training ({task}, T={T}).** Steps back "
               "from the last with ‖dL/dh_t‖ at least 1% of ‖dL/dh_T‖ on a "
               "held-out batch, at the start → at the end of training (mean over "
               "seeds): " + ", ".join(parts) + ".")
  return out


def _finding_clipping(results: dict) -> list[str]:
  """The clipping ablation: gradient spikes and what clipping changed."""
  abl = _clip_ablation_runs(results)
  if not abl:
    return []
  out = []
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
  allabl = aggregate([r for r in results["train"] if r["cell"] in results["clip_ablation_cells"]
                      and [r["task"], r["T"]] == list(results["clip_ablation_task"])])
  means = "; ".join(f"{CELLS[a['cell']][0]} {'clip ' + format(a['clip_norm'], 'g') if a['clip_norm'] else 'no clip'}: "
                    f"{a['final_mean']:.3f} ± {a['final_std']:.3f}" for a in allabl)
  out.append("**Gradient clipping.** Gradient norm before clipping, per step "
             "(seed 0): " + "; ".join(parts) + ". Final loss over baseline over "
             f"seeds: {means}. Spikes far above the median are explosions; "
             "clipping bounds the update they cause, not the norm itself.")
  return out


class _Ours:
  """This run's training rows as :func:`compare_published` reads them
  (clipped runs, aggregated over seeds)."""

  def __init__(self, results: dict):
    self.results = results
    self.agg = [a for a in choose_rates(aggregate(results["train"]))
                if a["clip_norm"] != 0]
    self.batch = results["preset_values"]["batch"]

  def get(self, task, T, cell):
    return next((a for a in self.agg if (a["task"], a["T"], a["cell"]) == (task, T, cell)),
                None)

  def lengths(self, task):
    return sorted({a["T"] for a in self.agg if a["task"] == task})

  @staticmethod
  def majority(a, k):
    return k * 2 > a["seeds"]

  def budget(self, a):
    return f"{a['steps']} steps × batch {self.batch}"


def compare_published(results: dict) -> list[dict]:
  """Each published finding checked against this run's numbers: what we
  measured, whether it agrees, and (where it does not) the budget beside
  theirs. Findings whose settings this run did not include say so."""
  o, rows = _Ours(results), []

  def add(source, claim, ours, verdict, why=""):
    rows.append(dict(source=source, claim=claim, ours=ours, verdict=verdict, why=why))

  for claims in (_claims_urnn_adding, _claims_indrnn, _claims_chrono, _claims_urnn_copy,
                 _claims_pixels, _claims_at_init):
    claims(o, add)
  return rows


def _claims_urnn_adding(o: _Ours, add) -> None:
  """uRNN (Arjovsky et al. 2016) on adding: the LSTM beats the baseline, the
  tanh RNN and the IRNN never."""
  get, lengths, majority, budget = o.get, o.lengths, o.majority, o.budget
  claim = "LSTM beats the no-memory baseline on adding up to T=400"
  sel = [(T, get("adding", T, "lstm_fb1")) for T in lengths("adding") if T <= 400]
  sel = [(T, a) for T, a in sel if a]
  if sel:
    ours = "; ".join(f"T={T}: {a['beat']}/{a['seeds']} beat ({a['final_mean']:.2f}× baseline)"
                     for T, a in sel)
    bad = [(T, a) for T, a in sel if not majority(a, a["beat"])]
    add("Arjovsky et al. 2016", claim, ours + " (LSTM forget bias 1)",
        "agrees" if not bad else f"disagrees at T={', '.join(str(T) for T, _ in bad)}",
        "" if not bad else f"our budget: {budget(bad[0][1])}")
  for cell, name in (("rnn_tanh", "tanh RNN"), ("irnn", "IRNN")):
    sel = [(T, get("adding", T, cell)) for T in lengths("adding")]
    sel = [(T, a) for T, a in sel if a]
    if sel:
      beat = [(T, a) for T, a in sel if a["beat"]]
      add("Arjovsky et al. 2016", f"the {name} never beats the baseline on adding (T=100–750)",
          "; ".join(f"T={T}: {a['beat']}/{a['seeds']} beat ({a['final_mean']:.2f}×)" for T, a in sel),
          "agrees" if not beat else
          f"disagrees: beaten at T={', '.join(str(T) for T, _ in beat)}",
          "" if not beat else "Adam with clipping here (RMSprop in the paper)")


def _claims_indrnn(o: _Ours, add) -> None:
  """IndRNN (Li et al. 2018) on adding at T=100 and T=1000."""
  lengths, majority, budget, agg = o.lengths, o.majority, o.budget, o.agg
  at100 = [a for a in agg if (a["task"], a["T"]) == ("adding", 100)]
  if at100:
    conv = [a for a in at100 if majority(a, a["solved"])]
    tanh = [a for a in at100 if a["cell"] in ("rnn_tanh", "rnn_tanh_orth")]
    others = [a for a in at100 if a not in tanh]
    bad = [a for a in others if a not in conv] + [a for a in tanh if a in conv]
    add("Li et al. 2018 (IndRNN)", "adding T=100: every model but the tanh RNN converges",
        "; ".join(f"{CELLS[a['cell']][0]} {a['solved']}/{a['seeds']} solved" for a in at100),
        "agrees" if not bad else "disagrees for " + ", ".join(CELLS[a["cell"]][0] for a in bad),
        "" if not bad else f"our budget: {budget(at100[0])}")
  if lengths("adding") and 1000 not in lengths("adding"):
    add("Li et al. 2018 (IndRNN)", "adding T=1000: LSTM and IRNN fail",
        "T=1000 not trained here", "not measured")


def _claims_chrono(o: _Ours, add) -> None:
  """Tallec & Ollivier 2018: chrono init against forget bias 1."""
  get, lengths, budget = o.get, o.lengths, o.budget
  T_long = max(lengths("adding"), default=None)
  ch, fb = (get("adding", T_long, c) for c in ("lstm_chrono", "lstm_fb1")) if T_long else (None, None)
  if ch and fb:
    c_med, f_med = ch["solved_median"], fb["solved_median"]
    ours = (f"T={T_long}: chrono solved {ch['solved']}/{ch['seeds']}"
            + (f" (median step {c_med})" if c_med else "")
            + f", forget bias 1 {fb['solved']}/{fb['seeds']}"
            + (f" (median step {f_med})" if f_med else ""))
    if c_med and f_med:
      ratio = f_med / c_med
      ours += f": chrono {ratio:.1f}× faster"
      verdict = "agrees (several times faster)" if ratio >= 3 else (
          "chrono faster, by less" if ratio > 1 else "disagrees")
    elif c_med:
      ratio = fb["steps"] / c_med
      ours += f": chrono at least {ratio:.1f}× faster (forget bias 1 did not solve within {fb['steps']})"
      verdict = "agrees (several times faster)" if ratio >= 3 else "chrono faster; ratio bounded by the budget"
    else:
      verdict = "not measured: chrono did not solve it within the budget"
    add("Tallec & Ollivier 2018", "adding T=750: chrono init converges about 7× faster "
        "than forget bias 1", ours, verdict,
        "" if c_med else f"our budget: {budget(ch)}")


def _claims_urnn_copy(o: _Ours, add) -> None:
  """uRNN on copy: the tanh RNN on the baseline, the LSTM below it only at T=100."""
  get, lengths, budget = o.get, o.lengths, o.budget
  sel = [(T, get("copy", T, "rnn_tanh")) for T in lengths("copy")]
  sel = [(T, a) for T, a in sel if a]
  if sel:
    off = [(T, a) for T, a in sel if a["final_min"] < 0.9]
    above = [T for T, a in sel if a["final_min"] > 1.1]
    add("Arjovsky et al. 2016", "copy: the tanh RNN sits on the baseline",
        "; ".join(f"T={T}: {a['final_mean']:.2f}× baseline" for T, a in sel),
        ("agrees" if not above else
         f"agrees (no memory), but at T={', '.join(map(str, above))} still above the "
         "baseline: the budget did not even reach it") if not off else
        "disagrees at T=" + ", ".join(str(T) for T, _ in off))
  sel = [(T, get("copy", T, "lstm_fb1")) for T in lengths("copy")]
  sel = [(T, a) for T, a in sel if a]
  if sel:
    ours = "; ".join(f"T={T}: {a['final_mean']:.3f} ± {a['final_std']:.3f}× baseline" for T, a in sel)
    below = {T: a["final_mean"] < 0.95 for T, a in sel}
    want = {T: T <= 100 for T, _ in sel}
    agree = below == want
    add("Arjovsky et al. 2016", "copy: LSTM beats the baseline only at T=100 "
        "(0.145 vs 0.173, i.e. 0.84× baseline, after 50K iterations, batch 20)",
        ours + " (below 0.95× counts as beating it)", "agrees" if agree else "disagrees",
        "" if agree else f"our budget: {budget(sel[0][1])}, theirs 50,000 × batch 20")


def _claims_pixels(o: _Ours, add) -> None:
  """Le et al. 2015 / uRNN: pixel MNIST test errors."""
  get, budget = o.get, o.budget
  for task, errs in (("mnist", {"lstm_fb1": 1.8, "irnn": 5.0}),
                     ("permuted_mnist", {"lstm_fb1": 12.0, "irnn": 18.0})):
    for cell, published in errs.items():
      a = get(task, 784, cell)
      if not a or "accuracy_mean" not in a:
        continue
      err = 100 * (1 - a["accuracy_mean"])
      ok = err <= published + 2.0
      add("Le et al. 2015; Arjovsky et al. 2016",
          f"{task.replace('_', ' ')}: {CELLS[cell][0]} test error {published}%",
          f"{err:.1f}% ± {100 * a['accuracy_std']:.1f} (test accuracy on sampled "
          "held-out batches)", "agrees (within 2 points)" if ok else "disagrees",
          "" if ok else f"our budget: {budget(a)}; theirs 10^5–10^6 steps")


def _claims_at_init(o: _Ours, add) -> None:
  """The uRNN paper's figure at initialization, T=1000."""
  results = o.results
  init = {d["cell"]: d for d in results["init"] if d["T"] == 1000}
  for cell, claim, check in (
      ("rnn_tanh_orth", "T=1000 at init: the tanh RNN's ‖dC/dh_t‖ loses about 14 "
       "orders of magnitude from t=T to t=0",
       lambda d: (f"{d['decay_orders']:.1f} orders (orthogonal init; "
                  f"default uniform init: {init['rnn_tanh']['decay_orders']:.1f})"
                  if "rnn_tanh" in init else f"{d['decay_orders']:.1f} orders",
                  abs(abs(d["decay_orders"]) - 14) <= 4)),
      ("lstm_fb1", "T=1000 at init: the LSTM's ‖dC/dh_t‖ falls below 1e-24 "
       "(relative to t=T) before t≈450",
       lambda d: (lambda rel: (f"{rel:.1e} at t=450 (forget bias 1)", rel < 1e-24))(
           d["grad_norms"][0][450] / d["grad_norms"][0][-1]))):
    if cell in init:
      ours, ok = check(init[cell])
      add("Arjovsky et al. 2016, figure", claim, ours, "agrees" if ok else "disagrees",
          "" if ok else "init and input scales differ from the paper's")


def report_markdown(results: dict, figs: list[str], note: str = "") -> str:
  """The report; ``note``: a hand-written paragraph (how the run was made)
  placed under the header, kept when :func:`rerender` writes it anew."""
  pv = results["preset_values"]
  L = ["# Gradient flow", "",
       f"Command: `{results['command']}`  ",
       f"Date: {results['date']}; preset `{results['preset']}`; "
       f"wall time {results['seconds']:.0f} s on {results['device']} "
       f"({results['machine']}); training time summed over the groups "
       f"{_train_seconds(results):.0f} s (groups read back from an earlier "
       "invocation of the same command count with their own time).", ""]
  if note:
    L += [note.strip(), ""]
  L += ["## Findings", ""]
  for p in findings(results):
    L += [p, ""]
  L += ["## At initialization", "",
        "Computed in float64 (the timing column in float32).", "",
        "| cell | T | orders of decay of ‖dL/dh_t‖ (t=T-1 → 0) | steps in the past (1%) | "
        "max singular value of W_hh | per-step factor of ‖dh_T/dh_t‖ | "
        "probe ‖dL/dh_t‖ ms / training grad ms |",
        "|---|---:|---:|---:|---:|---:|---:|"]
  for d in results["init"]:
    w = _max_sv(d)
    orders = (f"{d['decay_orders']:.1f}" if d["underflow_before"] is None else
              f"> {d['decay_orders']:.0f} (0 before t={d['underflow_before']})")
    L.append(f"| {CELLS[d['cell']][0]} | {d['T']} | {orders} | "
             f"{d['steps_in_the_past']} | {w} | {d['jacobian_factor']:.3f} | "
             f"{d['probe_grad_ms']:.1f} / {d['train_grad_ms']:.1f} "
             f"({d['probe_grad_ms'] / d['train_grad_ms']:.2f}x) |")
  if results.get("sensitivity"):
    pos = results["sensitivity"][0]["positions"]
    L += ["", "Sensitivity of the first layer's state to its recurrent parameters "
          "(Zucchet & Orvieto 2024), float64, adding inputs: ‖d(v·h_t)/dθ_rec‖ "
          "(θ_rec = W_hh; every param for the cells without one) and, in "
          "brackets, ‖d(v·h_t)/dh_0‖, root mean square over examples.", "",
          "| cell | " + " | ".join(f"t={p + 1}" for p in pos) + " |",
          "|---|" + "---:|" * len(pos)]
    for d in results["sensitivity"]:
      L.append(f"| {CELLS[d['cell']][0]} | " + " | ".join(
          f"{r:.3g} ({h:.1e})" for r, h in zip(d["recurrent"], d["initial_state"])) + " |")
  L += ["", "## Training", "",
        f"Same optimizer and budget for every cell (Adam, clip by global norm "
        f"{pv['clip']} unless the row says 0; steps, learning rate and hidden size "
        f"per task as listed; batch {pv['batch']}), {pv['seeds']} seeds each, "
        "all runs of one shape trained at once (`rnn_zoo.training.grid`). "
        "*Beat* = eval loss below half the no-memory baseline; *solved* = below "
        "5% of it; k/n counts the seeds that reached it at some evaluation. "
        "*Verdict*: the outcome of the final loss that every seed shares "
        "(solved < 5% of the baseline, beats < 50%, partly < 90%, at baseline "
        "≥ 90%, dead, diverged), else *mixed*; the step budget is a cap.", "",
        "| task | T | steps | lr | hidden | cell | clip | final loss / baseline (mean ± std) | 95% CI of the mean | per seed | verdict | beat | solved | s per run |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---|---:|"]
  every = aggregate(results["train"])
  for a in choose_rates(every):
    stopped = (f" (stopped at {a['steps_trained']})" if a["steps_trained"] < a["steps"] else "")
    L.append(f"| {a['task']} | {a['T']} | {a['steps']}{stopped} | {a['lr']:g} | {a['hidden']} | "
             f"{CELLS[a['cell']][0]} | {a['clip_norm']:g} | "
             f"{a['final_mean']:.3f} ± {a['final_std']:.3f}"
             + (f" ({a['diverged']} diverged: NaN)" if a.get("diverged") else "") + " | "
             f"{a['final_ci95'][0]:.3f} – {a['final_ci95'][1]:.3f} | "
             + ", ".join(f"{f:.3f}" for _, f, _ in a["per_seed"]) + f" | {a['verdict']} | "
             f"{_fmt_count(a['beat'], a['seeds'], a['beat_median'])} | "
             f"{_fmt_count(a['solved'], a['seeds'], a['solved_median'])} | "
             f"{a['seconds_per_run']:.1f} |")
  swept = [a for a in every if "chosen" in a]
  if swept:
    L += ["", "Learning-rate sweep: every rate's seeds; the rate with the lowest "
          "mean validation loss (data apart from training and from the held-out "
          "data) is the one in the table above (**bold**).", "",
          "| task | T | cell | clip | lr | validation loss / baseline (mean) | "
          "held-out loss / baseline (mean ± std) | per seed | verdict |",
          "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for a in sorted(swept, key=lambda a: (a["task"], a["T"], list(CELLS).index(a["cell"]),
                                          -a["clip_norm"], a["lr"])):
      lr = f"**{a['lr']:g}**" if a["chosen"] else f"{a['lr']:g}"
      L.append(f"| {a['task']} | {a['T']} | {CELLS[a['cell']][0]} | {a['clip_norm']:g} | "
               f"{lr} | {a['valid_mean']:.3f} | {a['final_mean']:.3f} ± "
               f"{a['final_std']:.3f} | "
               + ", ".join(f"{f:.3f}" for _, f, _ in a["per_seed"])
               + f" | {a['verdict']} |")
  L += ["", "No-memory baselines: adding 0.167 (MSE of always predicting 1); copy "
        "10 ln 8 / (T+20); pixel digits ln 10 (chance). Seconds per run: the group's wall time (compile "
        "included) over its runs.", "", "## Published results beside ours", "",
        "| source | task | finding |", "|---|---|---|"]
  for src, task, text in PUBLISHED:
    L.append(f"| {src} | {task} | {text} |")
  checks = compare_published(results)
  if checks:
    L += ["", "Each finding checked against this run (computed from results.json):", "",
          "| source | finding | ours | verdict | why not |", "|---|---|---|---|---|"]
    for c in checks:
      L.append(f"| {c['source']} | {c['claim']} | {c['ours']} | {c['verdict']} | {c['why']} |")
  L += ["", "## Figures", ""]
  for f in figs:
    L.append(f"![{f}]({f})")
  return "\n".join(L) + "\n"


def load_results(folder: pathlib.Path) -> dict:
  """A run folder's ``results.json`` (or the ``results.json.gz`` a committed
  report keeps)."""
  import gzip  # pylint: disable=g-import-not-at-top
  plain, packed = folder / "results.json", folder / "results.json.gz"
  if plain.exists():
    return json.loads(plain.read_text())
  if packed.exists():
    return json.loads(gzip.decompress(packed.read_bytes()))
  raise FileNotFoundError(f"--report_from={str(folder)!r} holds no results.json "
                          "or results.json.gz")


def rerender(folder: pathlib.Path) -> str:
  """``folder/report.md`` as this version writes it from the folder's
  results: the same figures and hand-written note (the blockquote under the
  header), the findings and verdicts recomputed."""
  results = load_results(folder)
  old = (folder / "report.md").read_text() if (folder / "report.md").exists() else ""
  head = old.split("\n## Findings", 1)[0]
  note = "\n".join(l for l in head.splitlines() if l.startswith(">"))
  figs = re.findall(r"^!\[([^\]]+)\]\(", old, flags=re.M)
  return report_markdown(results, figs, note)


def _machine() -> str:
  import platform  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
  except OSError:
    pass
  return f"{os.cpu_count()} CPU cores, {cpu}"


def _preset_from_flags() -> tuple[dict, list[str]]:
  """The preset with the command line's overrides, and the cells; a bad
  flag ends the program with one line naming it."""
  preset = dict(PRESETS[_PRESET.value])
  cells = _CELLS.value or list(preset.get("cells", CLASSIC_CELLS))
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
    preset["sensitivity_positions"] = tuple(sorted(
        {min(t, max(lengths) - 1) for t in preset.get("sensitivity_positions", (9, 29, 99, 299))}))
    by_task = {}
    for run in preset["train"]:
      by_task.setdefault(run["task"], run)
    preset["train"] = tuple(dict({k: v for k, v in by_task[task].items()
                                  if k not in ("cells", "seeds")}, T=T)
                            for task in by_task for T in lengths)
  if _MNIST_DIR.value is not None:
    from rnn_zoo.data import pixels  # pylint: disable=g-import-not-at-top
    try:  # fail now, not after an hour of other runs
      pixels.load_mnist(data_dir=_MNIST_DIR.value)
    except ValueError as e:
      sys.exit(f"error: --mnist_dir={_MNIST_DIR.value!r}: {e}")
    preset["train"] = tuple(preset["train"]) + tuple(
        dict(run, data_dir=_MNIST_DIR.value) for run in MNIST_RUNS)
  if _STEPS.value is not None:
    if _STEPS.value <= 0:
      sys.exit(f"error: --steps must be positive, got {_STEPS.value}")
    preset["train"] = tuple(dict(run, steps=_STEPS.value) for run in preset["train"])
    preset["eval_every"] = min(preset["eval_every"], _STEPS.value)
    preset["steps_per_call"] = min(preset["steps_per_call"], _STEPS.value)
    preset["diagnose_every"] = preset["eval_every"] * max(
        1, min(preset["diagnose_every"], _STEPS.value) // preset["eval_every"])
    preset["log_every"] = min(preset["log_every"], _STEPS.value)
  if _SEEDS.value is not None:
    if _SEEDS.value < 1:
      sys.exit(f"error: --seeds must be >= 1, got {_SEEDS.value}")
    preset["seeds"] = _SEEDS.value
  if _LRS.value is not None:
    try:
      lrs = tuple(float(x) for x in _LRS.value)
    except ValueError:
      lrs = ()
    if not lrs or not all(math.isfinite(x) and x > 0 for x in lrs):
      sys.exit(f"error: --lrs must be positive numbers, got {_LRS.value}")
    preset["train"] = tuple(dict({k: v for k, v in run.items() if k != "lr"},
                                 lrs=tuple(sorted(set(lrs)))) for run in preset["train"])
    preset.setdefault("valid_fraction", 0.1)
  return preset, cells


def _measure_at_init(init_jobs, cells, preset: dict, out: pathlib.Path, t_wall: float,
                     fresh) -> tuple[list, list]:
  """The measurements at initialization (per cell and length) and the
  sensitivities (per cell): each saved as it finishes and read back when the
  same command runs again (``fresh``: the files the workers just wrote)."""
  results = {"init": []}
  for i, (c, T) in enumerate(init_jobs, 1):
    # Saved per (cell, T), read back when the same command runs again.
    path = _init_path(out, c, T)
    if path.exists():
      if str(path) not in fresh:
        _say(f"[{i}/{len(init_jobs)}] at init: {CELLS[c][0]}, T={T}: done before, "
             f"read from {path}")
      results["init"].append(json.loads(path.read_text()))
    else:
      results["init"].append(compute_init(c, T, preset, out, f"{i}/{len(init_jobs)}", t_wall))
  results["sensitivity"] = []
  for i, c in enumerate(cells, 1):
    path = _sensitivity_path(out, c)
    results["sensitivity"].append(
        json.loads(path.read_text()) if path.exists() else
        compute_sensitivity(c, preset, out, f"{i}/{len(cells)}", t_wall))
  return results["init"], results["sensitivity"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _REPORT_FROM.value:
    folder = pathlib.Path(_REPORT_FROM.value)
    try:
      text = rerender(folder)
    except FileNotFoundError as e:
      sys.exit(f"error: {e}")
    (folder / "report.md").write_text(text)
    _say(f"wrote {folder / 'report.md'}")
    return
  preset, cells = _preset_from_flags()
  if _DEVICES.value < 0:
    sys.exit(f"error: --devices must be >= 0 (0: one per CPU core), got {_DEVICES.value}")
  if _WORKERS.value < 0:
    sys.exit(f"error: --workers must be >= 0 (0: one per CPU core without an "
             f"accelerator), got {_WORKERS.value}")
  cores = os.cpu_count() or 1
  workers = _WORKERS.value or _auto_workers(cores)
  # The runs axis of each group is sharded over devices; on a CPU host one
  # device per core runs the runs' shards side by side.
  devices = _DEVICES.value or max(1, cores // workers)
  if workers == 1:
    xla_config.force_host_devices(devices)
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "gradient_flow", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  # The training loop's own progress lines would drown ours.
  logging.set_verbosity(logging.WARNING)
  pylogging.getLogger("absl").setLevel(pylogging.WARNING)

  import jax  # pylint: disable=g-import-not-at-top
  t_start = time.perf_counter()
  t_wall = time.time()
  kind = jax.devices()[0].device_kind
  results = {"command": "python -m benchmarks.gradient_flow " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "preset": _PRESET.value, "preset_values": preset,
             "device": (f"{kind} x{jax.device_count()}" if workers == 1 else
                        f"{workers} worker processes of {kind} x{devices}"),
             "workers": workers, "machine": _machine(), "init": [], "train": []}
  ablation_cells = [c for c in preset["clip_ablation"] if c in cells]
  results["clip_ablation_cells"] = ablation_cells
  results["clip_ablation_task"] = [preset["train"][0]["task"], preset["train"][0]["T"]]
  preset["clip_ablation"] = tuple(ablation_cells)
  jobs = train_jobs(preset, cells, preset["seeds"])
  init_jobs = [(c, T) for T in preset["init_lengths"] for c in cells]
  (out / "init").mkdir(exist_ok=True)
  # The files the workers wrote are read back below without a word.
  fresh = (run_in_workers(workers, devices, preset, cells, jobs, out, t_wall)
           if workers > 1 else frozenset())
  results["init"], results["sensitivity"] = _measure_at_init(
      init_jobs, cells, preset, out, t_wall, fresh)
  results["train"] = train_all(jobs, preset, out, t_wall, fresh)
  results["seconds"] = time.perf_counter() - t_start
  figs = figures(results, out)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results, figs))
  _say(f"done in {results['seconds']:.0f}s: {out / 'report.md'}")
  for p in findings(results):
    _say("\n" + p)


if __name__ == "__main__":
  # Many small programs: compile time matters as much as run time.
  xla_config.use_recommended_cpu_flags(extra=xla_config.FAST_COMPILE_CPU_FLAGS)
  app.run(main)
