"""What the benchmark scripts share: interleaved timing, the environment."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import sys
import time

import jax


def time_round_robin(fns: dict, rounds: int, settle_s: float = 0.02,
                     lead_calls: int = 1) -> dict[str, list[float]]:
  """Times each of ``fns`` once per round, round by round (drift hits all
  alike).

  Before each timed call, ``settle_s`` of idle time lets the threads of the
  implementation that ran before stop spinning (PyTorch's OpenMP workers
  and XLA's pool spin a while after their work; a two-core machine that
  hands them to the next implementation times the previous one's
  leftovers), then ``lead_calls`` untimed calls of the same function put
  its own threads in the state a loop of it keeps them in.
  """
  for fn in fns.values():  # compile and warm up
    fn()
    fn()
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      time.sleep(settle_s)
      for _ in range(lead_calls):
        fn()
      t = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t)
  return times


def cpu_model() -> str:
  """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment() -> dict:
  env = {"python": sys.version.split()[0], "jax": jax.__version__,
         "cpu_model": cpu_model(),
         "xla_flags": os.environ.get("XLA_FLAGS", ""),
         "backend": jax.default_backend(),
         "devices": [str(d) for d in jax.devices()],
         "device_kind": jax.devices()[0].device_kind,
         "cpu_count": os.cpu_count(), "machine": platform.machine(),
         "processor": platform.processor()}
  try:
    import torch  # pylint: disable=g-import-not-at-top
    env["torch"] = torch.__version__
    env["torch_threads"] = torch.get_num_threads()
  except ImportError:
    env["torch"] = None
  return env


def parse_lengths(values: list[str]) -> list[int]:
  """``--lengths`` as positive ints; exits with a one-line error otherwise."""
  try:
    lengths = [int(t) for t in values]
  except ValueError:
    sys.exit(f"error: --lengths must be positive ints, got {values}")
  if any(t < 1 for t in lengths):
    sys.exit(f"error: --lengths must be positive ints, got {lengths}")
  return lengths


def run_folder(out: str | None, name: str) -> pathlib.Path:
  """``out``, or ``runs/<name>/<timestamp>``; created."""
  path = pathlib.Path(out or os.path.join(
      "runs", name, datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  path.mkdir(parents=True, exist_ok=True)
  return path


def parse_shapes(text: str) -> list[tuple[int, int, int, int, int]]:
  """``BxTxIxH`` (one layer) or ``BxTxIxHxL`` entries as (B, T, I, H, L)."""
  shapes = []
  for item in text.split(","):
    parts = item.strip().lower().split("x")
    if len(parts) not in (4, 5) or not all(p.isdigit() and int(p) > 0 for p in parts):
      raise ValueError(f"--shapes entries must be BxTxIxH or BxTxIxHxL positive "
                       f"ints, got {item!r}")
    shapes.append(tuple(int(p) for p in parts) + ((1,) if len(parts) == 4 else ()))
  return shapes


def shape_name(shape) -> str:
  """(B, T, I, H, L) as the reports name it: ``32×128×128×256 ×2 layers``."""
  B, T, I, H, L = shape
  return f"{B}×{T}×{I}×{H}" + (f" ×{L} layers" if L > 1 else "")


def write_report(out: pathlib.Path, report, results: dict | None = None) -> None:
  """``report.md`` (a string, or a list of lines) and, if given,
  ``results.json`` into ``out``; prints where they went."""
  if not isinstance(report, str):
    report = "\n".join(report) + "\n"
  if results is not None:
    (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.md").write_text(report)
  print(f"wrote {out / 'report.md'}" + (" and results.json" if results is not None else ""))


def run_main(main, *, malloc: bool = True) -> None:
  """``absl.app.run(main)`` after the XLA CPU flags (and, with ``malloc``,
  the allocator setting) the binaries use, so a benchmark times what users
  run; they must be set before JAX starts its backend."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from rnn_zoo import xla_config  # pylint: disable=g-import-not-at-top
  xla_config.use_recommended_cpu_flags()
  if malloc:
    xla_config.use_recommended_malloc()
  app.run(main)
