r"""Where one LSTM forward step's time goes, on XLA:CPU and in PyTorch.

For a shape (batch, time, input, hidden) it times, interleaved round by
round:

* ``zoo forward``: ``jit(rz.unroll)`` of an LSTM, the whole forward pass;
* ``input projection``: ``x @ W_ih + b`` for every step at once (one GEMM);
* ``recurrent matmul``: ``h @ W_hh`` ``T`` times in a ``fori_loop``, each
  step depending on the last (nothing to hoist);
* ``pointwise``: a ``lax.scan`` over the precomputed projections doing only
  the LSTM's gates and state update (the zoo's one-``tanh`` form);
* ``torch forward``: ``nn.LSTM`` under ``no_grad``, and ``torch.mm`` of the
  same recurrent product (``T`` calls);

and reports each as µs per time step, so the sum of the parts can be set
beside the whole. Usage::

  python -m benchmarks.step_profile                       # 32x128x128x256
  python -m benchmarks.step_profile --shape=64x64x256x512 --rounds=9

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/step_profile/<timestamp>``).
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
from rnn_zoo import xla_config

from benchmarks import common

_SHAPE = flags.DEFINE_string("shape", "32x128x128x256", "BxTxIxH.")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Timed rounds (after 2 warm-ups).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/step_profile/<timestamp>).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch rows.")
_XLA_DEFAULTS = flags.DEFINE_bool(
    "xla_defaults", False, "Keep XLA's default CPU flags (not rnn_zoo.xla_config's).")


def parts(B, T, I, H, with_torch: bool) -> dict:
  cell = rz.LSTM(H)
  p = cell.init(jax.random.key(0), I)
  x = jax.random.normal(jax.random.key(1), (B, T, I))
  xp = jax.random.normal(jax.random.key(2), (T, B, 4 * H))
  h0 = jax.random.normal(jax.random.key(3), (B, H)) * 0.1
  forward = jax.jit(lambda p, x: rz.unroll(cell, p, x)[0])
  project = jax.jit(lambda p, x: x.reshape(B * T, I) @ p["w_ih"] + p["b"][None])
  # W_hh's gate blocks are orthogonal (the LSTM's init), so h keeps its
  # norm through the chain: no overflow, and no denormals (which XLA flushes
  # to zero and PyTorch computes slowly).
  recurrent = jax.jit(lambda h, w: jax.lax.fori_loop(
      0, T, lambda i, h: (h @ w)[:, :H], h))

  def pointwise_scan(xp):
    def body(carry, xp_t):
      new, y = cell.pointwise({}, carry, xp_t, jnp.zeros_like(xp_t))
      return new, y
    return jax.lax.scan(body, cell.initial_carry((B,)), xp)[1]
  pointwise = jax.jit(pointwise_scan)
  fns = {"zoo forward": lambda: forward(p, x).block_until_ready(),
         "input projection": lambda: project(p, x).block_until_ready(),
         "recurrent matmul": lambda: recurrent(h0, p["w_hh"]).block_until_ready(),
         "pointwise": lambda: pointwise(xp).block_until_ready()}
  if with_torch:
    import torch  # pylint: disable=g-import-not-at-top
    lstm = torch.nn.LSTM(I, H, batch_first=True)
    xt = torch.randn(B, T, I)
    ht = torch.from_numpy(np.asarray(h0)).clone()
    wt = torch.from_numpy(np.asarray(p["w_hh"])).clone()

    def torch_forward():
      with torch.no_grad():
        lstm(xt)

    def torch_mm():
      h = ht
      for _ in range(T):
        h = torch.mm(h, wt)[:, :H].contiguous()
    fns["torch forward"] = torch_forward
    fns["torch recurrent matmul"] = torch_mm
  return fns


def report_markdown(r: dict) -> str:
  B, T, I, H = r["shape"]
  us = r["us_per_step"]
  lines = [
      "# One LSTM forward step, part by part", "",
      f"Command: `{r['command']}`  ", f"Date: {r['date']}  ",
      f"Machine: {r['environment']['cpu_count']} CPU cores "
      f"({r['environment']['processor'] or r['environment']['machine']}), jax "
      f"{r['environment']['jax']}, torch {r['environment']['torch']}, XLA_FLAGS="
      f"`{r['environment']['xla_flags']}`", "",
      f"B×T×I×H = {B}×{T}×{I}×{H}; medians of {r['rounds']} interleaved rounds, "
      "in µs per time step (the whole call over T).", "",
      "| part | µs / step | GFLOP/s |", "|---|---:|---:|"]
  for k, v in us.items():
    g = r["gflops"].get(k)
    lines.append(f"| {k} | {v:.1f} | {g:.0f} |" if g else f"| {k} | {v:.1f} | |")
  total = us["input projection"] + us["recurrent matmul"] + us["pointwise"]
  lines += ["", f"Sum of the zoo's parts: {total:.1f} µs per step against "
            f"{us['zoo forward']:.1f} for the whole forward pass."]
  if "torch forward" in us:
    lines.append(f"PyTorch's forward: {us['torch forward']:.1f} µs per step; the "
                 f"zoo's takes {us['zoo forward'] / us['torch forward']:.2f}× PyTorch's time.")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    B, T, I, H = (int(v) for v in _SHAPE.value.lower().split("x"))
    assert min(B, T, I, H) > 0
  except (ValueError, AssertionError):
    sys.exit(f"error: --shape must be BxTxIxH positive ints, got {_SHAPE.value!r}")
  if _ROUNDS.value < 1:
    sys.exit(f"error: --rounds must be >= 1, got {_ROUNDS.value}")
  with_torch = not _NO_TORCH.value
  if with_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      with_torch = False
  out = common.run_folder(_OUT.value, "step_profile")
  times = common.time_round_robin(parts(B, T, I, H, with_torch), _ROUNDS.value)
  us = {k: float(np.median(v)) * 1e6 / T for k, v in times.items()}
  mm = 2 * B * H * 4 * H
  gflops = {"recurrent matmul": mm / us["recurrent matmul"] / 1e3,
            "input projection": 2 * B * I * 4 * H / us["input projection"] / 1e3}
  if "torch recurrent matmul" in us:
    gflops["torch recurrent matmul"] = mm / us["torch recurrent matmul"] / 1e3
  results = {"command": "python -m benchmarks.step_profile " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "shape": [B, T, I, H],
             "rounds": _ROUNDS.value, "us_per_step": us, "gflops": gflops}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results))
  print(report_markdown(results))


if __name__ == "__main__":
  if "--xla_defaults" not in sys.argv:
    # An LSTM forward pass: the flags the binaries use for it.
    xla_config.use_recommended_cpu_flags(cell="lstm", mode="infer")
  app.run(main)
