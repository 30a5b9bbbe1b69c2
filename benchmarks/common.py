"""What the benchmark scripts share: interleaved timing, the environment."""

from __future__ import annotations

import os
import platform
import sys
import time

import jax


def time_round_robin(fns: dict, rounds: int) -> dict[str, list[float]]:
  for fn in fns.values():  # compile and warm up
    fn()
    fn()
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      t = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t)
  return times


def environment() -> dict:
  env = {"python": sys.version.split()[0], "jax": jax.__version__,
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
