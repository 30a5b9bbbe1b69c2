r"""Decoding speed: beam search as one jitted ``lax.while_loop`` against a
Python loop over the same jitted step, and greedy / beam width 1 beside it.

The decoder is captioning-sized (a 1-layer LSTM over word embeddings with a
vocabulary of ``--vocab`` words, fed ``<START>`` then its own words); speed
does not depend on training, so the params are random; the carry counts the
words so far and ``<END>``'s logit grows with it, so that captions end at
about ``--caption_length`` words as real ones do. Prints and
writes (``results.json``, ``report.md`` in the run folder) captions/s for:

* ``beam`` — :func:`rnn_zoo.decoding.beam_search`, jitted;
* ``beam_loop`` — :func:`rnn_zoo.decoding.beam_search_loop` (a Python loop
  calling the jitted beam step once per token), the baseline;
* ``greedy`` — :func:`rnn_zoo.decoding.generate` at temperature 0, jitted.

Beam and its loop must give identical captions (checked and reported).

Usage::

  python -m benchmarks.decoding                     # ~1 min on 2 CPU cores
  python -m benchmarks.decoding --beams=1,3,5 --batch=64
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import rnn_zoo as rz
from benchmarks import common
from rnn_zoo import decoding

_BATCH = flags.DEFINE_integer("batch", 32, "Images (prompts) decoded at once.")
_BEAMS = flags.DEFINE_list("beams", ["1", "3", "5"], "Beam widths.")
_VOCAB = flags.DEFINE_integer("vocab", 1000, "Vocabulary size.")
_HIDDEN = flags.DEFINE_integer("hidden", 512, "LSTM units.")
_EMBED = flags.DEFINE_integer("embed", 256, "Word embedding size.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 20, "Most words per caption.")
_CAPTION_LENGTH = flags.DEFINE_integer("caption_length", 10,
                                       "Words after which <END> becomes the likeliest.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds (medians, interleaved).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/decoding/<timestamp>).")

START, END = 1, 2


def decoder(key):
  """A Show-and-Tell-sized word decoder: ``(params, carry, tokens) -> (carry, logits)``."""
  cell = rz.LSTM(_HIDDEN.value)
  k1, k2, k3 = jax.random.split(key, 3)
  V = _VOCAB.value
  params = {"embed": jax.random.normal(k1, (V, _EMBED.value)) * 0.1,
            "cell": cell.init(k2, _EMBED.value),
            "out_w": jax.random.normal(k3, (_HIDDEN.value, V)) * 0.05}
  end_bias = jnp.zeros((1, V)).at[0, END].set(1.0)

  def step(p, carry, tokens):
    lstm, t = carry
    lstm, h = cell.step(p["cell"], lstm, p["embed"][tokens])
    logits = h @ p["out_w"] + 3.0 * (t - _CAPTION_LENGTH.value)[:, None] * end_bias
    return (lstm, t + 1), logits

  def initial_carry(batch):
    return cell.initial_carry((batch,)), jnp.zeros((batch,), jnp.float32)
  return initial_carry, params, step


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    beams = [int(b) for b in _BEAMS.value]
  except ValueError:
    sys.exit(f"error: --beams must be positive ints, got {_BEAMS.value}")
  for name, v in (("batch", _BATCH.value), ("vocab", _VOCAB.value),
                  ("hidden", _HIDDEN.value), ("embed", _EMBED.value),
                  ("max_length", _MAX_LENGTH.value), ("rounds", _ROUNDS.value),
                  ("caption_length", _CAPTION_LENGTH.value),
                  *((f"beams[{i}]", b) for i, b in enumerate(beams))):
    if v <= 0:
      sys.exit(f"error: --{name} must be positive, got {v}")
  if _VOCAB.value <= END or max(beams) > _VOCAB.value:
    sys.exit(f"error: --vocab={_VOCAB.value} must exceed {END} and every beam width")
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "decoding", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  initial_carry, params, step = decoder(jax.random.key(0))
  B, L = _BATCH.value, _MAX_LENGTH.value
  prompt = jnp.full((B, 1), START, jnp.int32)
  carry = initial_carry(B)
  rows = []
  greedy = jax.jit(lambda p, c: decoding.generate(
      step, p, c, prompt, length=L, key=jax.random.key(0), temperature=0,
      end_token=END)[0])
  for K in beams:
    kw = dict(beam_size=K, max_length=L, end_token=END)
    beam = jax.jit(lambda p, c, kw=kw: decoding.beam_search(step, p, c, prompt, **kw))
    fns = {
        "beam": lambda: jax.block_until_ready(beam(params, carry)),
        "beam_loop": lambda: jax.block_until_ready(
            decoding.beam_search_loop(step, params, carry, prompt, **kw)),
        "greedy": lambda: jax.block_until_ready(greedy(params, carry)),
    }
    times = {k: float(np.median(v)) for k, v in
             common.time_round_robin(fns, _ROUNDS.value).items()}
    a, b = beam(params, carry), decoding.beam_search_loop(step, params, carry, prompt, **kw)
    same = bool(np.array_equal(a["tokens"], b["tokens"]))
    g = greedy(params, carry)
    width1_is_greedy = bool(np.array_equal(a["tokens"][:, 0], g)) if K == 1 else None
    row = {"beam_size": K, "batch": B, "max_length": L,
           "ms": {k: v * 1e3 for k, v in times.items()},
           "captions_per_s": {k: B / v for k, v in times.items()},
           "speedup_over_loop": times["beam_loop"] / times["beam"],
           "identical_to_loop": same, "width1_equals_greedy": width1_is_greedy,
           "mean_length": float(np.mean(np.asarray(a["lengths"][:, 0]))),
           "steps": int(a["steps"])}
    print(f"beam {K}: jitted {row['ms']['beam']:.1f} ms ({row['captions_per_s']['beam']:,.0f} "
          f"captions/s), Python loop {row['ms']['beam_loop']:.1f} ms "
          f"({row['captions_per_s']['beam_loop']:,.0f}/s): {row['speedup_over_loop']:.1f}x; "
          f"greedy {row['ms']['greedy']:.1f} ms; identical: {same}", flush=True)
    rows.append(row)
  results = {"command": "python -m benchmarks.decoding " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(),
             "model": (f"LSTM {_HIDDEN.value}, embedding {_EMBED.value}, "
                       f"vocabulary {_VOCAB.value}"), "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  env = results["environment"]
  lines = ["# Decoding speed: beam search", "", f"Command: `{results['command']}`  ",
           f"Date: {results['date']}; {env['device_kind']} ({env['cpu_count']} cores); "
           f"jax {env['jax']}; {results['model']}; batch {B}, at most {L} words, "
           f"{_ROUNDS.value} interleaved rounds, medians.", "",
           "| beam | jitted ms | loop ms | jitted captions/s | loop captions/s | "
           "jitted / loop | greedy ms | same captions | mean length | steps |",
           "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
  for r in rows:
    lines.append(
        f"| {r['beam_size']} | {r['ms']['beam']:.1f} | {r['ms']['beam_loop']:.1f} | "
        f"{r['captions_per_s']['beam']:,.0f} | {r['captions_per_s']['beam_loop']:,.0f} | "
        f"{r['speedup_over_loop']:.1f}x | {r['ms']['greedy']:.1f} | "
        f"{r['identical_to_loop']} | {r['mean_length']:.1f} | {r['steps']} |")
  common.write_report(out, lines)


if __name__ == "__main__":
  common.run_main(main)
