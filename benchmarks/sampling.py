r"""Sampling speed: one jit-compiled ``lax.scan`` against per-token loops.

Times :func:`rnn_zoo.decoding.generate` (the whole generation in one jitted
scan) against :func:`rnn_zoo.decoding.generate_loop` (a Python loop calling
the same jitted step once per character) on a char-rnn-sized model
(2-layer LSTM, 128 units, vocabulary 104 as for the embedded corpus), for a
few batch sizes, beside PyTorch's two ways to sample (when torch is
installed; ``torch.no_grad()``, one-hot inputs, softmax with temperature and
``torch.multinomial``): ``torch_cells``, a per-token loop over two
``nn.LSTMCell``; ``torch_lstm``, a per-token loop calling a 2-layer
``nn.LSTM`` on one step with the state ``(h, c)`` carried. Prints ms,
characters/s and the ratios, and writes ``results.json`` and ``report.md``.
Speed does not depend on training, so the params are random.

Usage::

  python -m benchmarks.sampling                    # ~1 min on 2 CPU cores
  python -m benchmarks.sampling --length=2000 --batches=1,32
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
import rnn_zoo as rz
from rnn_zoo import decoding

_LENGTH = flags.DEFINE_integer("length", 500, "Characters generated per sample.")
_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Samples generated at once.")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "LSTM units per layer.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds (medians).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/sampling/<timestamp>).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch anchors.")

V = 104  # the embedded corpus's vocabulary


def make_torch(B, L, H, how):
  """PyTorch sampling of L characters after an 8-token prompt: "cells" (two
  nn.LSTMCell stepped per token) or "lstm" (a 2-layer nn.LSTM called on one
  step at a time, (h, c) carried)."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  head = torch.nn.Linear(H, V)
  if how == "cells":
    cells = [torch.nn.LSTMCell(V, H), torch.nn.LSTMCell(H, H)]
  else:
    lstm = torch.nn.LSTM(V, H, num_layers=2, batch_first=True)
  prompt = torch.ones(B, 8, dtype=torch.long)
  eye = torch.eye(V)

  def run():
    with torch.no_grad():
      if how == "cells":
        state = [(torch.zeros(B, H), torch.zeros(B, H)) for _ in cells]
        def step(tok):
          x = eye[tok]
          for i, cell in enumerate(cells):
            state[i] = cell(x, state[i])
            x = state[i][0]
          return head(x)
        for t in range(prompt.shape[1]):
          logits = step(prompt[:, t])
      else:
        out, state = lstm(eye[prompt])
        logits = head(out[:, -1])
        def step(tok):
          nonlocal state
          out, state = lstm(eye[tok][:, None], state)
          return head(out[:, 0])
      tokens = []
      for _ in range(L):
        tok = torch.multinomial(torch.softmax(logits / 1.0, -1), 1)[:, 0]
        tokens.append(tok)
        logits = step(tok)
      return torch.stack(tokens, 1)
  return run


def _median(fn, rounds):
  fn()
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    batches = [int(b) for b in _BATCHES.value]
  except ValueError:
    sys.exit(f"error: --batches must be positive ints, got {_BATCHES.value}")
  if _LENGTH.value <= 0 or any(b <= 0 for b in batches):
    sys.exit(f"error: --length and --batches must be positive, got "
             f"{_LENGTH.value}, {batches}")
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "sampling", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  no_torch = _NO_TORCH.value
  if not no_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print("torch not installed: skipping the PyTorch anchors (pip install -e '.[torch]')")
      no_torch = True
  lm = rz.models.CharLM(vocab_size=V, cell=rz.LSTM(_HIDDEN.value), num_layers=2)
  params = lm.init(key=jax.random.key(0))
  L = _LENGTH.value
  rows = []
  for B in batches:
    prompt = jnp.ones((B, 8), jnp.int32)
    kw = dict(length=L, key=jax.random.key(1), temperature=1.0)
    scan = jax.jit(lambda p, c, pr: decoding.generate(lm.step, p, c, pr, **kw))
    t_scan = _median(lambda: jax.block_until_ready(
        scan(params, lm.initial_carry(B), prompt)), _ROUNDS.value)
    t_loop = _median(lambda: jax.block_until_ready(decoding.generate_loop(
        lm.step, params, lm.initial_carry(B), prompt, **kw)), max(1, _ROUNDS.value // 2))
    same = bool(np.array_equal(scan(params, lm.initial_carry(B), prompt)[0],
                               decoding.generate_loop(lm.step, params, lm.initial_carry(B),
                                                      prompt, **kw)[0]))
    row = {"batch": B, "length": L, "scan_ms": t_scan * 1e3, "loop_ms": t_loop * 1e3,
           "speedup": t_loop / t_scan, "scan_chars_per_s": B * L / t_scan,
           "loop_chars_per_s": B * L / t_loop, "identical_samples": same}
    for how in ([] if no_torch else ["cells", "lstm"]):
      t = _median(make_torch(B, L, _HIDDEN.value, how), max(1, _ROUNDS.value // 2))
      row[f"torch_{how}_ms"] = t * 1e3
      row[f"torch_{how}_vs_scan"] = t / t_scan
    print(f"batch {B}: scan {row['scan_ms']:.1f} ms ({row['scan_chars_per_s']:,.0f} chars/s), "
          f"loop {row['loop_ms']:.1f} ms ({row['loop_chars_per_s']:,.0f} chars/s): "
          f"{row['speedup']:.1f}x; identical samples: {same}" + "".join(
              f"; torch_{h} {row[f'torch_{h}_ms']:.1f} ms ({row[f'torch_{h}_vs_scan']:.1f}x the scan's time)"
              for h in ("cells", "lstm") if f"torch_{h}_ms" in row), flush=True)
    rows.append(row)
  results = {"command": "python -m benchmarks.sampling " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "device": jax.devices()[0].device_kind, "jax": jax.__version__,
             "model": f"2-layer LSTM {_HIDDEN.value}, vocab 104", "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  lines = ["# Sampling speed", "", f"Command: `{results['command']}`  ",
           f"Date: {results['date']}; {results['device']}; jax {results['jax']}; "
           f"{results['model']}; {L} characters per sample.", "",
           "`x scan` = that implementation's time / the scan's (> 1: the scan "
           "is faster). `torch_cells`: a per-token loop over two `nn.LSTMCell`; "
           "`torch_lstm`: a per-token loop over a 2-layer `nn.LSTM` with the "
           "state carried.", "",
           "| batch | scan ms | loop ms | loop x scan | torch_cells ms | x scan | "
           "torch_lstm ms | x scan | scan chars/s | same samples (scan, loop) |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  cell = lambda r, k, f: f.format(r[k]) if k in r else "–"
  for r in rows:
    lines.append(f"| {r['batch']} | {r['scan_ms']:.1f} | {r['loop_ms']:.1f} | "
                 f"{r['speedup']:.1f}x | {cell(r, 'torch_cells_ms', '{:.1f}')} | "
                 f"{cell(r, 'torch_cells_vs_scan', '{:.1f}x')} | "
                 f"{cell(r, 'torch_lstm_ms', '{:.1f}')} | "
                 f"{cell(r, 'torch_lstm_vs_scan', '{:.1f}x')} | "
                 f"{r['scan_chars_per_s']:,.0f} | {r['identical_samples']} |")
  common.write_report(out, lines)


if __name__ == "__main__":
  common.run_main(main)
