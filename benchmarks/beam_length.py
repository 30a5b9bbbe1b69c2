"""How ``decoding.beam_search``'s time grows with ``max_length``.

A bigram model (a ``[V, V]`` table of log-probabilities: the step itself
costs next to nothing, so the loop's own work shows) whose end token is never
likely, so every run takes all ``max_length`` steps. Times each length
(interleaved rounds, medians) and the time per step; the per-step time of
the longest length over the shortest's is the growth: about 1 for a loop
whose steps cost the same at every length, the length ratio for one that
copies every prefix at every step.

  python -m benchmarks.beam_length --lengths=2000,8000,32000

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/beam_length/<timestamp>``).
"""

from __future__ import annotations

import datetime
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from rnn_zoo import decoding

_LENGTHS = flags.DEFINE_list("lengths", ["2000", "8000", "32000"], "max_length values.")
_BEAM = flags.DEFINE_integer("beam", 4, "beam_size.")
_VOCAB = flags.DEFINE_integer("vocab", 8, "Vocabulary size (the last token ends).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds (medians).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/beam_length/<timestamp>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lengths = common.parse_lengths(_LENGTHS.value)
  for name, flag, low in (("beam", _BEAM, 1), ("vocab", _VOCAB, 2), ("rounds", _ROUNDS, 1)):
    if flag.value < low:
      sys.exit(f"error: --{name} must be >= {low}, got {flag.value}")
  if _BEAM.value > _VOCAB.value:
    sys.exit(f"error: --beam must be at most --vocab={_VOCAB.value}, got {_BEAM.value}")
  V, end = _VOCAB.value, _VOCAB.value - 1
  logits = jax.random.normal(jax.random.key(0), (V, V))
  table = jax.nn.log_softmax(logits).at[:, end].set(-1e9)   # the end never wins
  step = lambda p, c, tok: (c, p[tok])
  prompt = jnp.zeros((1, 1), jnp.int32)

  def run(L):
    f = jax.jit(lambda p: decoding.beam_search(step, p, (), prompt, beam_size=_BEAM.value,
                                               max_length=L, end_token=end))
    return lambda: jax.block_until_ready(f(table))

  fns = {L: run(L) for L in lengths}
  steps = {L: int(fns[L]().get("steps")) for L in lengths}
  times = common.time_round_robin(fns, _ROUNDS.value)
  rows = []
  for L in lengths:
    s = float(np.median(times[L]))
    rows.append({"max_length": L, "steps": steps[L], "s": s, "us_per_step": s / steps[L] * 1e6,
                 "all_s": times[L]})
  growth = rows[-1]["us_per_step"] / rows[0]["us_per_step"]
  results = {"command": "python -m benchmarks.beam_length " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "beam": _BEAM.value, "vocab": V,
             "rounds": _ROUNDS.value, "rows": rows,
             "per_step_growth": growth, "length_ratio": lengths[-1] / lengths[0]}
  env = results["environment"]
  lines = ["# beam_search time against max_length", "",
           f"`{results['command']}`", "",
           f"Date: {results['date']}; {env['device_kind']} ({env['cpu_count']} cores); "
           f"jax {env['jax']}; beam {_BEAM.value}, vocabulary {V}, {_ROUNDS.value} "
           "interleaved rounds, medians.", "",
           "| max_length | steps | s | µs per step |", "|---:|---:|---:|---:|"]
  lines += [f"| {r['max_length']:,} | {r['steps']:,} | {r['s']:.4f} | {r['us_per_step']:.2f} |"
            for r in rows]
  lines += ["", f"Time per step at {lengths[-1]:,} over {lengths[0]:,}: {growth:.2f}x "
            f"(the lengths' ratio is {lengths[-1] / lengths[0]:.0f}x: a loop that copied "
            "every prefix at every step would grow by about that much)."]
  common.write_report(common.run_folder(_OUT.value, "beam_length"), lines, results)


if __name__ == "__main__":
  common.run_main(main)
