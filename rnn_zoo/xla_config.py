"""XLA settings measured to speed up the recurrences on CPU.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so
:func:`use_recommended_cpu_flags` must run before the first JAX computation
(the experiment binaries and benchmarks call it first thing).

``--xla_cpu_use_fusion_emitters=false``: XLA:CPU's newer fusion emitters
compiled the GRU step's pointwise fusion to code ~3.5x slower than the
classic emitters (21 ms vs 6 ms for 128 steps at batch 32, hidden 256;
jax 0.10.2). It leaves the big GEMMs alone.
"""

from __future__ import annotations

import os

RECOMMENDED_CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)


def use_recommended_cpu_flags() -> list[str]:
  """Appends the recommended flags to ``XLA_FLAGS`` unless the user set them.

  Returns the flags that were added. A flag already named in ``XLA_FLAGS``
  (with any value) is left as the user set it. Has no effect once a JAX
  backend has started.
  """
  current = os.environ.get("XLA_FLAGS", "")
  added = [f for f in RECOMMENDED_CPU_FLAGS if f.split("=")[0] not in current]
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current] + added).strip()
  return added


def force_host_devices(n: int) -> bool:
  """Splits the CPU into ``n`` XLA devices
  (``--xla_force_host_platform_device_count``), unless ``XLA_FLAGS``
  already sets a count. Work sharded over them (the runs of a
  ``rnn_zoo.training.grid`` group) then runs on ``n`` threads side by side.
  Accelerators are not affected. Returns whether the flag was added; like
  every XLA flag, it must be set before the first JAX computation.
  """
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  current = os.environ.get("XLA_FLAGS", "")
  if "--xla_force_host_platform_device_count" in current or n == 1:
    return False
  os.environ["XLA_FLAGS"] = f"{current} --xla_force_host_platform_device_count={n}".strip()
  return True
