r"""Samples from a trained char-rnn, or reports argmax against sampling.

  python -m experiments.char_rnn.sample --workdir=/tmp/char_rnn \
      --prime="The " --length=500 --temperature=0.8 --top_k=0 --seed=0 --num_samples=2
  python -m experiments.char_rnn.sample --workdir=/tmp/char_rnn --report

Reads the newest checkpoint, its config and its vocabulary from --workdir
(the training run's). Generation is one jit-compiled ``lax.scan`` for all
samples at once. ``--report`` generates ``--num_samples`` samples at each of
``--report_temperatures`` (0 = argmax) and measures how diverse they are
(distinct n-grams, the rate of 20-character substrings seen before in the
same sample, the period of a final loop), next to stretches of the
validation text of the same length; it writes ``sampling_report.md`` and
``sampling_report.json`` to the workdir.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from experiments import common
from experiments import launch
from rnn_zoo import checks
from rnn_zoo.metrics import text as text_metrics
from experiments.char_rnn import workload
from rnn_zoo.data import text as text_lib
from rnn_zoo.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.",
                               required=True)
_PRIME = flags.DEFINE_string("prime", None, "Start string (default: the config's "
                             "sample_prime).")
_LENGTH = flags.DEFINE_integer("length", 500, "Characters to generate per sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature (0: argmax).")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k likeliest characters (0: all).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same text.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples generated at once.")
_REPORT = flags.DEFINE_bool("report", False, "Write the argmax-vs-sampling report.")
_REPORT_TEMPERATURES = flags.DEFINE_list(
    "report_temperatures", ["0", "0.5", "0.8", "1.0"], "Temperatures in the report.")

METRICS = ("distinct_4", "distinct_8", "distinct_16", "repeated_substring_rate",
           "loop_period")


def load(workdir: str):
  """``(lm, params, vocab, config, step)`` of a char_rnn workdir's newest
  checkpoint."""
  loaded = common.load_trained(workdir, "char_rnn", required_config=("corpus", "max_chars"))
  vocab = text_lib.Vocab.from_json(loaded["vocab"])
  config = loaded["config"]
  lm = workload.make_char_lm(ml_collections.ConfigDict(config), vocab.size)
  return lm, loaded["state"]["params"], vocab, config, loaded["step"]


def _sample(lm, params, vocab, prime, temperature, seed):
  sampler = workload.make_sampler(lm, vocab, length=_LENGTH.value,
                                   temperature=temperature, top_k=_TOP_K.value)
  return sampler(params, prime, jax.random.key(seed), _NUM_SAMPLES.value)


def report(lm, params, vocab, config, step, prime):
  try:
    temps = [float(t) for t in _REPORT_TEMPERATURES.value]
  except ValueError:
    raise UserError("--report_temperatures must be numbers, got "
                     f"{_REPORT_TEMPERATURES.value}") from None
  rows = []
  for t in temps:
    samples = _sample(lm, params, vocab, prime, t, _SEED.value)
    stats = [text_metrics.diversity(s) for s in samples]
    rows.append({"source": "argmax" if t == 0 else f"sampling T={t:g}",
                 "temperature": t, "example": samples[0][:300],
                 **{m: float(np.mean([s[m] for s in stats])) for m in METRICS},
                 "looping_samples": sum(s["loop_period"] > 0 for s in stats)})
  # Real text of the same length, for scale.
  text, _ = text_lib.get_corpus(config["corpus"], config["max_chars"])
  _, val = text_lib.split(text, config["val_fraction"], config["val_block"])
  L, n = _LENGTH.value, _NUM_SAMPLES.value
  starts = np.linspace(0, max(len(val) - L, 0), n).astype(int)
  stats = [text_metrics.diversity(val[s:s + L]) for s in starts]
  rows.append({"source": "validation text", "temperature": None,
               "example": val[starts[0]:starts[0] + 300],
               **{m: float(np.mean([s[m] for s in stats])) for m in METRICS},
               "looping_samples": sum(s["loop_period"] > 0 for s in stats)})
  command = "python -m experiments.char_rnn.sample " + " ".join(sys.argv[1:])
  result = {"command": command, "step": step,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "prime": prime, "length": L, "num_samples": n, "seed": _SEED.value,
            "top_k": _TOP_K.value, "rows": rows}
  workdir = _WORKDIR.value
  with open(os.path.join(workdir, "sampling_report.json"), "w") as f:
    json.dump(result, f, indent=1)
  lines = [
      "# Argmax against softmax sampling", "",
      f"Command: `{command}`  ", f"Checkpoint step {step}; {n} samples of {L} "
      f"characters per row, primed with {prime!r}, seed {_SEED.value}.", "",
      "distinct-n: distinct n-grams over all n-grams (1 = nothing repeats); "
      "repeated-20: share of positions whose next 20 characters already "
      "occurred earlier in the sample; loop period: the period with which the "
      "last 200 characters repeat exactly (0: none), averaged; looping: samples "
      "that end in such a loop.", "",
      "| source | distinct-4 | distinct-8 | distinct-16 | repeated-20 | loop period | looping |",
      "|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['source']} | {r['distinct_4']:.3f} | {r['distinct_8']:.3f} | "
                 f"{r['distinct_16']:.3f} | {r['repeated_substring_rate']:.3f} | "
                 f"{r['loop_period']:.1f} | {r['looping_samples']}/{n} |")
  lines += ["", "Examples (first 300 characters):", ""]
  for r in rows:
    lines += [f"**{r['source']}**", "", "```", r["example"], "```", ""]
  path = os.path.join(workdir, "sampling_report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  print("\n".join(lines[:9 + len(rows)]))
  print(f"wrote {path}")


def run():
  for name, flag in (("length", _LENGTH), ("num_samples", _NUM_SAMPLES)):
    checks.positive_int(f"--{name}", flag.value)
  lm, params, vocab, config, step = load(_WORKDIR.value)
  prime = _PRIME.value if _PRIME.value is not None else config["sample_prime"]
  if not prime:
    raise UserError(f"--prime must be a non-empty string, got {prime!r}")
  unknown = sorted(set(prime) - set(vocab.chars))
  if unknown:
    logging.warning("--prime holds characters the corpus never had, read as the "
                    "unknown token: %s", "".join(unknown))
  if _REPORT.value:
    return report(lm, params, vocab, config, step, prime)
  for i, s in enumerate(_sample(lm, params, vocab, prime, _TEMPERATURE.value,
                                _SEED.value)):
    if _NUM_SAMPLES.value > 1:
      print(f"===== sample {i} =====")
    print(prime + s)


def main():
  launch.run(run)


if __name__ == "__main__":
  main()
