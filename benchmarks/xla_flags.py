r"""Which XLA:CPU settings make the recurrences fastest, by measurement.

XLA reads ``XLA_FLAGS`` once per process, so each candidate setting runs
``benchmarks.throughput`` in its own child process (``--xla_defaults``, so
nothing else is added), timing rnn_zoo and PyTorch interleaved. PyTorch does
not read ``XLA_FLAGS``: its time in each child is the anchor that takes out
the drift between children, and the table compares ``torch / rnn_zoo``
ratios (> 1: rnn_zoo is faster) across settings, row by row.

Usage::

  python -m benchmarks.xla_flags                       # ~15 min on 2 cores
  python -m benchmarks.xla_flags --shapes=32x128x128x256 --rounds=3

Writes ``results.json`` and ``report.md`` to ``--out`` (default
``runs/xla_flags/<timestamp>``); each setting's child writes its own folder
there, and running the same command again reads finished settings back.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags

from benchmarks import common

# name -> XLA_FLAGS
SETTINGS = {
    "xla defaults": "",
    "no fusion emitters": "--xla_cpu_use_fusion_emitters=false",
    "xnn greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "xnn greedy, no fusion emitters": (
        "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY "
        "--xla_cpu_use_fusion_emitters=false"),
    "fast math": "--xla_cpu_enable_fast_math=true",
}
# (--xla_cpu_use_thunk_runtime=false, the pre-thunk runtime, is ignored by
# jax 0.10.2: "no longer supported".)

_SETTINGS = flags.DEFINE_list("settings", list(SETTINGS), "Settings to compare.")
_SHAPES = flags.DEFINE_string(
    "shapes", "32x128x128x256,16x256x32x64,64x64x256x512,32x128x128x256x2",
    "BxTxIxH[xL] shapes, as benchmarks.throughput.")
_CELLS = flags.DEFINE_list("cells", ["lstm", "gru"], "lstm, gru.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per child.")
_NO_TORCH = flags.DEFINE_bool(
    "no_torch", False, "Skip PyTorch (then raw times are compared, drift included).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/xla_flags/<timestamp>).")


def run_setting(name: str, out: pathlib.Path) -> dict:
  """One setting's child run, or its results when the same --out already
  holds them for the same flags, shapes, cells and rounds (resume)."""
  folder = out / name.replace(" ", "_").replace(",", "")
  done = folder / "results.json"
  if done.exists():
    res = json.loads(done.read_text())
    if (res["environment"]["xla_flags"] == SETTINGS[name] and res["rounds"] == _ROUNDS.value
        and sorted({r["cell"] for r in res["rows"]}) == sorted(_CELLS.value)
        and sorted({tuple(r["shape"]) for r in res["rows"]}) == sorted(
            common.parse_shapes(_SHAPES.value))):
      print(f"  read back from {done}", flush=True)
      return res
  env = dict(os.environ)
  env["XLA_FLAGS"] = SETTINGS[name]
  cmd = [sys.executable, "-m", "benchmarks.throughput", "--xla_defaults",
         f"--out={folder}", f"--shapes={_SHAPES.value}", f"--rounds={_ROUNDS.value}",
         f"--cells={','.join(_CELLS.value)}",
         "--impls=rnn_zoo" + ("" if _NO_TORCH.value else ",torch")]
  if _NO_TORCH.value:
    cmd.append("--no_torch")
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f"setting {name!r} ({SETTINGS[name]}) failed:\n{proc.stderr[-3000:]}")
  return json.loads((folder / "results.json").read_text())


def report_markdown(results: dict) -> str:
  names = list(results["settings"])
  anchored = not results["no_torch"]
  env = results["environment"]
  lines = [
      "# XLA:CPU settings for the recurrences", "",
      f"Command: `{results['command']}`  ",
      f"Date: {results['date']}  ",
      f"Machine: {env['cpu_count']} CPU cores ({env['processor'] or env['machine']}), "
      f"jax {env['jax']}, torch {env['torch']}", "",
      "Settings (`XLA_FLAGS`): " + "; ".join(
          f"**{n}** `{SETTINGS[n] or '(none)'}`" for n in names), "",
      ("Each cell: rnn_zoo's time in ms, and in brackets PyTorch's time over "
       "rnn_zoo's measured in the same child process (> 1: rnn_zoo is faster). "
       "Best ratio per row in bold." if anchored else
       "Each cell: rnn_zoo's time in ms (children run one after another; "
       "drift included). Best per row in bold."), "",
      "| cell | mode | shape | " + " | ".join(names) + " |",
      "|---|---|---|" + "---:|" * len(names),
  ]
  for key in results["rows"]:
    cells = results["rows"][key]
    score = {n: (cells[n]["torch_over_zoo"] if anchored else -cells[n]["ms"])
             for n in names}
    best = max(score, key=score.get)
    out = []
    for n in names:
      c = cells[n]
      text = f"{c['ms']:.1f}" + (f" ({c['torch_over_zoo']:.2f}×)" if anchored else "")
      out.append(f"**{text}**" if n == best else text)
    cell, mode, shape = json.loads(key)
    lines.append(f"| {cell} | {mode} | {common.shape_name(shape)} | " + " | ".join(out) + " |")
  lines += ["", "Best setting per row: " + "; ".join(
      f"{' '.join(map(str, json.loads(k)[:2]))} {common.shape_name(json.loads(k)[2])}: {b}"
      for k, b in results["best"].items()), ""]
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  bad = [s for s in _SETTINGS.value if s not in SETTINGS]
  if bad:
    sys.exit(f"error: --settings must name settings from {list(SETTINGS)}, got {bad}")
  if _ROUNDS.value < 1:
    sys.exit(f"error: --rounds must be >= 1, got {_ROUNDS.value}")
  out = common.run_folder(_OUT.value, "xla_flags")
  rows: dict[str, dict] = {}
  env = None
  for name in _SETTINGS.value:
    print(f"[{name}] XLA_FLAGS={SETTINGS[name] or '(none)'}", flush=True)
    try:
      res = run_setting(name, out)
    except RuntimeError as e:
      sys.exit(f"error: {e}")
    env = res["environment"]
    for row in res["rows"]:
      ours = row["impls"]["rnn_zoo"]["ms"]
      cell = {"ms": ours}
      if "torch" in row["impls"]:
        cell["torch_ms"] = row["impls"]["torch"]["ms"]
        cell["torch_over_zoo"] = cell["torch_ms"] / ours
      rows.setdefault(json.dumps([row["cell"], row["mode"], row["shape"]]), {})[name] = cell
      print(f"  {row['cell']} {row['mode']} {row['shape']}: {ours:.1f} ms" +
            (f", torch/zoo {cell['torch_over_zoo']:.2f}" if "torch_over_zoo" in cell else ""),
            flush=True)
  no_torch = not all("torch_over_zoo" in c for r in rows.values() for c in r.values())
  best = {k: (max(r, key=lambda n: r[n]["torch_over_zoo"]) if not no_torch
              else min(r, key=lambda n: r[n]["ms"])) for k, r in rows.items()}
  results = {"command": "python -m benchmarks.xla_flags " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": env, "settings": {n: SETTINGS[n] for n in _SETTINGS.value},
             "no_torch": no_torch, "rows": rows, "best": best}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report_markdown(results))
  print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
  app.run(main)
