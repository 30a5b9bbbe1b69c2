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

# For programs that compile many small models (the gradient-flow grid):
# LLVM's level-1 optimization compiled a group's program ~3 s faster (7.4 vs
# 10.0 s for 3 LSTM runs, T=100) and ran its steps as fast or faster (6.6 vs
# 7.5 s for 400 steps); level 0 ran 6x slower. 2-core CPU VM, jax 0.10.2.
FAST_COMPILE_CPU_FLAGS = ("--xla_backend_optimization_level=1",)


def use_recommended_cpu_flags(extra: tuple[str, ...] = ()) -> list[str]:
  """Appends the recommended flags (and ``extra`` ones) to ``XLA_FLAGS``
  unless the user set them.

  Returns the flags that were added. A flag already named in ``XLA_FLAGS``
  (with any value) is left as the user set it. Has no effect once a JAX
  backend has started.
  """
  current = os.environ.get("XLA_FLAGS", "")
  added = [f for f in RECOMMENDED_CPU_FLAGS + tuple(extra)
           if f.split("=")[0] not in current]
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
