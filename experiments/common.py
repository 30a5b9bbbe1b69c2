"""What every experiment's config and glue share.

* :func:`add_cell_fields` / :func:`add_training_fields`: the config blocks
  every experiment has (the recurrent cell; optimization, logging and
  checkpoints), one place for their defaults and comments.
* :func:`make_cell`: the config's cell through the one factory,
  :func:`rnn_zoo.make_cell`.
* :func:`field_comments`: the comment of every field of a config module
  (``--help`` prints them).
"""

from __future__ import annotations

import datetime
import inspect
import json
import math
import os
import re
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import rnn_zoo as rz
from rnn_zoo import checks

# Cell fields that change only the initial params (never a shape or what a
# step computes): runs differing in them can share one compiled grid program.
INIT_ONLY_CELL_FIELDS = ("forget_bias", "chrono", "recurrent_init", "exprnn_init")

# (name, default, comment): the cell block.
CELL_FIELDS = (
    ("cell", "lstm", "rnn | irnn | lstm | gru | mingru | minlstm | lru | exprnn | indrnn | cornn"),
    ("hidden_size", 128, "H of every layer."),
    ("num_layers", 1, "Stacked recurrent layers."),
    ("dropout_rate", 0.0, "Dropout between layers."),
    ("forget_bias", 1.0, "LSTM / minLSTM forget-gate bias at init."),
    ("chrono", False, "LSTM chrono init with T_max = seq_len."),
    ("gru_variant", "cudnn", "GRU: cudnn (reset after matmul) | cho."),
    ("recurrent_init", "uniform", "rnn: uniform | orthogonal | identity | glorot_uniform."),
    ("lru_r_min", 0.9, "lru: smallest |lambda| at init (Orvieto et al.'s long-task ring)."),
    ("lru_r_max", 0.999, "lru: largest |lambda| at init."),
    ("lru_max_phase", 0.1 * math.pi, "lru: largest arg(lambda) at init (pi/10)."),
    ("exprnn_init", "henaff", "exprnn: henaff | cayley (the skew parameter's init)."),
    ("indrnn_magnitude", 2.0, "indrnn: |u|^T kept <= this for T = seq_len (0: no bound)."),
    ("cornn_dt", 0.042, "cornn: the time step dt (the paper's sMNIST value)."),
    ("cornn_gamma", 2.7, "cornn: gamma, the oscillators' stiffness."),
    ("cornn_epsilon", 4.7, "cornn: epsilon, the damping."),
    ("compute_dtype", "float32", "Matmul dtype: float32 | bfloat16 (carry, params, accumulation float32)."),
    ("cudnn", False, "lstm: run it through cuDNN on an NVIDIA GPU (rz.unroll(impl='cudnn'); float32, one device)."),
)

# What config.compute_dtype may name: the dtype of a cell's matmuls (the
# cells' ``dtype``); bfloat16 for accelerators, on the scan runner.
COMPUTE_DTYPES = ("float32", "bfloat16")

# The optimization, logging and checkpoint block the training loop reads.
TRAINING_FIELDS = (
    ("batch_size", 64, "Global batch (divides over all devices)."),
    ("num_steps", 4000, "Training steps (with a time budget: at most this many)."),
    ("time_budget_minutes", 0.0, "Wall clock for the whole run: num_steps becomes the steps that fit, measured at the start and kept in <workdir>/budget.json (0: off)."),
    ("optimizer", "adam", "sgd | momentum | rmsprop | adam | adamw | adagrad"),
    ("learning_rate", 1e-3, "Peak learning rate."),
    ("orthogonal_lr_scale", 1.0, "exprnn: the skew parameter's rate over learning_rate (the paper: 0.1)."),
    ("schedule", "constant", "constant | cosine | step"),
    ("warmup_steps", 0, "Linear warm-up steps."),
    ("decay_every", 1000, "step schedule: decay period."),
    ("decay_factor", 0.5, "step schedule: factor per period."),
    ("momentum", 0.9, "momentum / rmsprop momentum (0: none)."),
    ("weight_decay", 0.0, "adamw weight decay."),
    ("clip_norm", 1.0, "Clip by global norm (0: off)."),
    ("clip_value", 0.0, "Clip each entry to [-v, v] (0: off)."),
    ("nonfinite", "stop", "NaN/Inf loss or grad: stop | skip (the update)."),
    ("log_every", 100, "Steps between metric logs."),
    ("eval_every", 1000, "Steps between evaluations."),
    ("checkpoint_every", 500, "Steps between checkpoints."),
    ("keep_checkpoints", 3, "Checkpoints kept."),
    ("async_checkpoint", True, "Save in the background."),
)


def _add(c: ml_collections.ConfigDict, block, overrides: dict) -> None:
  names = {name for name, _, _ in block}
  unknown = sorted(set(overrides) - names)
  if unknown:
    raise rz.UserError(f"no such fields in this block: {unknown}")
  for name, default, _ in block:
    c[name] = overrides.get(name, default)


def add_cell_fields(c: ml_collections.ConfigDict, **overrides) -> None:
  """Adds the cell block (see :data:`CELL_FIELDS`), with other defaults."""
  _add(c, CELL_FIELDS, overrides)


def add_training_fields(c: ml_collections.ConfigDict, **overrides) -> None:
  """Adds the training block (see :data:`TRAINING_FIELDS`)."""
  _add(c, TRAINING_FIELDS, overrides)


def make_cell(config, t_max: int | None = None) -> rz.Cell:
  """The cell named by ``config.cell`` with its options from the config;
  chrono initialization uses ``t_max`` (default ``config.seq_len``)."""
  checks.choice("config.cell", config.cell, rz.CELL_NAMES)
  checks.positive_int("config.hidden_size", config.hidden_size)
  checks.choice("config.compute_dtype", config.compute_dtype, COMPUTE_DTYPES)
  H = config.hidden_size
  make = lambda name, **kw: rz.make_cell(name, H, dtype=jnp.dtype(config.compute_dtype), **kw)
  if config.cell == "lstm":
    chrono = (config.seq_len if t_max is None else t_max) if config.chrono else None
    return make("lstm", forget_bias=config.forget_bias, chrono_t_max=chrono)
  if config.cell == "gru":
    checks.choice("config.gru_variant", config.gru_variant, ("cudnn", "cho"))
    return make("gru", variant=config.gru_variant)
  if config.cell == "irnn":
    return make("irnn")
  if config.cell == "mingru":
    return make("mingru")
  if config.cell == "minlstm":
    return make("minlstm", forget_bias=config.forget_bias)
  if config.cell == "lru":
    return make("lru", r_min=config.lru_r_min, r_max=config.lru_r_max,
                max_phase=config.lru_max_phase)
  if config.cell == "exprnn":
    checks.choice("config.exprnn_init", config.exprnn_init, rz.cells.memory.EXPRNN_INITS)
    return make("exprnn", init_scheme=config.exprnn_init)
  if config.cell == "indrnn":
    checks.number_at_least("config.indrnn_magnitude", config.indrnn_magnitude, 0)
    T = config.get("seq_len", 0) if t_max is None else t_max
    bounded = bool(config.indrnn_magnitude) and bool(T)
    return make("indrnn", t_max=T if bounded else 0,
                magnitude=config.indrnn_magnitude if bounded else 2.0)
  if config.cell == "cornn":
    for field in ("cornn_dt", "cornn_gamma", "cornn_epsilon"):
      checks.positive_number(f"config.{field}", config[field])
    return make("cornn", dt=config.cornn_dt, gamma=config.cornn_gamma,
                epsilon=config.cornn_epsilon)
  checks.choice("config.recurrent_init", config.recurrent_init,
                ("uniform", "orthogonal", "identity", "glorot_uniform"))
  return make("rnn", recurrent_init=config.recurrent_init)


def check_cell_fields(config) -> None:
  """The cell block's values (each error names the field and the value)."""
  checks.positive_int("config.num_layers", config.num_layers)
  checks.fraction("config.dropout_rate", config.dropout_rate)
  checks.choice("config.cudnn", config.cudnn, (False, True))
  if config.cudnn and config.cell != "lstm":
    raise rz.UserError(f"config.cudnn=True runs an LSTM through cuDNN; got "
                       f"cell={config.cell!r}")


def field_comments(config_module) -> dict[str, str]:
  """``{field: comment}`` for a config module: its own ``c.x = v  # comment``
  lines and the shared blocks it adds."""
  source = inspect.getsource(config_module)
  out = {}
  for line in source.splitlines():
    m = re.match(r"\s*c\.(\w+)\s*=.*?#\s*(.*)$", line)
    if m and m.group(1) not in out:
      out[m.group(1)] = m.group(2).strip()
  if "add_cell_fields" in source:
    out.update({n: out.get(n, t) for n, _, t in CELL_FIELDS})
  if "add_training_fields" in source:
    out.update({n: out.get(n, t) for n, _, t in TRAINING_FIELDS})
  return out


def presets(config_module) -> list[str]:
  """The preset names a config module's ``get_config`` accepts (its
  ``PRESETS`` tuple)."""
  return list(config_module.PRESETS)


def describe_config(config_module) -> str:
  """Presets, then every field of the default preset with its default and
  comment: the help text of ``--config``."""
  c = config_module.get_config("")
  comments = field_comments(config_module)
  names = ", ".join(repr(p) if p else "'' (default)" for p in presets(config_module))
  lines = [f"Config file[:preset]. Presets: {names}.", "Fields (--config.<field>=value):"]
  for key in c.keys():
    lines.append(f"  {key} = {c[key]!r}: {comments.get(key, '')}")
  return "\n".join(lines)


__all__ = ["CELL_FIELDS", "TRAINING_FIELDS", "add_cell_fields",
           "add_training_fields", "make_cell", "check_cell_fields",
           "field_comments", "describe_config", "presets"]


def load_trained(workdir: str, experiment: str, required_config: tuple = ()) -> dict:
  """The newest readable checkpoint of a training run of ``experiment`` (a
  sample binary's input): :func:`rnn_zoo.training.checkpoint.load_latest`'s
  dict, after checking the workdir holds one, with its vocabulary and the
  config fields ``required_config``."""
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise rz.UserError(f"--workdir={workdir!r} holds no checkpoints (train first: "
                    f"python -m experiments.{experiment} --workdir={workdir})")
  loaded = checkpoint.load_latest(workdir)
  if loaded["vocab"] is None or any(k not in loaded["config"] for k in required_config):
    raise rz.UserError(f"--workdir={workdir!r} is not a {experiment} run (no vocabulary "
                    "or config of one beside its checkpoints)")
  return loaded


def run_header(experiment: str, workdir: str) -> tuple[dict, dict] | None:
  """What a final evaluation starts from: ``(params, header)`` of the run's
  newest checkpoint (params as device arrays; the header: command, date,
  step, device), or None on processes other than the first."""
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  if jax.process_index() != 0:
    return None
  loaded = checkpoint.load_latest(workdir)
  header = {"command": f"python -m experiments.{experiment} " + " ".join(sys.argv[1:]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "step": loaded["step"], "device": jax.devices()[0].device_kind}
  return jax.tree.map(jnp.asarray, loaded["state"]["params"]), header


# -- tabulating finished runs (the compare binaries) ----------------------------
# What a finished run's results.json holds, per binary (read_results checks).
RESULTS_KEYS = {"vqa": "accuracy", "captioning": "splits"}


def read_results(runs: list[str], binary: str) -> dict:
  """``{label: [results.json dicts]}`` of ``label:workdir`` specs, in the
  order given (the label groups seeds). A results.json that is not JSON (a
  run killed while writing it) or not a ``binary`` run's is an error naming
  it."""
  out = {}
  for spec in runs:
    label, sep, workdir = spec.partition(":")
    if not sep or not label or not workdir:
      raise rz.UserError(f"--runs entries must be label:workdir, got {spec!r}")
    path = os.path.join(workdir, "results.json")
    if not os.path.isfile(path):
      raise rz.UserError(f"--runs names {workdir!r}, which has no results.json (a "
                         f"finished {binary} run writes one)")
    try:
      with open(path, encoding="utf-8") as f:
        results = json.load(f)
    except ValueError as e:
      raise rz.UserError(f"{path} is not valid JSON ({e}); was the run killed while "
                         "writing it? Rerun its command to finish it") from None
    key = RESULTS_KEYS.get(binary)
    if not isinstance(results, dict) or (key is not None and key not in results):
      raise rz.UserError(f"{path} is not the results of a {binary} run (no {key!r})")
    out.setdefault(label, []).append(results)
  return out


def get_path(row, path: tuple):
  """``row[path[0]][path[1]]...``, or None where a key is missing."""
  for k in path:
    if isinstance(row, list) and isinstance(k, int) and -len(row) <= k < len(row):
      row = row[k]
    elif isinstance(row, dict) and k in row:
      row = row[k]
    else:
      return None
  return row


def mean_std(values) -> str:
  """``"mean ± std"`` (sample std) of the non-None values, ``"mean"`` of
  one, ``"–"`` of none."""
  v = np.asarray([x for x in values if x is not None], float)
  if not v.size:
    return "–"
  return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else f"{v.mean():.3f}"


def check_output(flag: str, path: str | None) -> None:
  """A file the binary will write at the end: checked before any work, so
  that a path it cannot write fails in one line at the start, not with a
  traceback after the work is done."""
  if not path:
    return
  folder = os.path.dirname(os.path.abspath(path))
  if os.path.isdir(path):
    raise rz.UserError(f"{flag} names {path!r}, which is a folder; give a file path")
  if not os.path.isdir(folder):
    raise rz.UserError(f"{flag} names {path!r}, whose folder {folder!r} does not exist")
  if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
    raise rz.UserError(f"{flag} names {path!r}, which this user cannot write")


def print_table(make_text, output: str | None) -> None:
  """Prints ``make_text()`` (a bad ``--runs`` ends in one line) and writes it
  to ``output`` when given (checked writable first)."""
  try:
    check_output("--output", output)
    text = make_text()
  except rz.UserError as e:  # a user's mistake: one line, status 2
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(2) from None
  print(text)
  if output:
    with open(output, "w", encoding="utf-8") as f:
      f.write(text)
