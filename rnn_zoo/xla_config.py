"""XLA settings measured to speed up the recurrences on CPU.

``python -m benchmarks.xla_flags`` measures each candidate setting in its own
process; :data:`CELL_CPU_FLAGS` holds the winners per cell and mode, which
the experiment binaries apply for their config's cell.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so
:func:`use_recommended_cpu_flags` must run before the first JAX computation
(the experiment binaries and benchmarks call it first thing).

``--xla_cpu_use_fusion_emitters=false``: XLA:CPU's newer fusion emitters
compiled the GRU step's pointwise fusion to code ~3.5x slower than the
classic emitters (21 ms vs 6 ms for 128 steps at batch 32, hidden 256;
jax 0.10.2). It leaves the big GEMMs alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

NO_FUSION_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
XNN_GREEDY = "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY"

# For a program that runs cells of several kinds, or one not measured below.
RECOMMENDED_CPU_FLAGS = (NO_FUSION_EMITTERS,)

# Per cell and mode ("train": forward+backward; "infer": forward only), the
# setting with the best PyTorch/rnn_zoo time ratio over most of the shapes of
# ``python -m benchmarks.xla_flags`` (2-core Intel Xeon VM, jax 0.10.2,
# 2026-11-29; docs/performance.md). The LSTM: XNNPACK's greedy graph fusion
# was best or within 5% of it in 7 of 8 rows, and NO_FUSION_EMITTERS made its
# forward pass 1.1-3.2x slower. The GRU: both together were best in all
# four training rows; forward only, NO_FUSION_EMITTERS alone (best in 2 of 4
# rows, within 6% in the others).
CELL_CPU_FLAGS = {
    ("lstm", "train"): (XNN_GREEDY,),
    ("lstm", "infer"): (XNN_GREEDY,),
    ("gru", "train"): (XNN_GREEDY, NO_FUSION_EMITTERS),
    ("gru", "infer"): (NO_FUSION_EMITTERS,),
}
MODES = ("train", "infer")

# For programs that compile many small models (the gradient-flow grid):
# LLVM's level-1 optimization compiled a group's program ~3 s faster (7.4 vs
# 10.0 s for 3 LSTM runs, T=100) and ran its steps as fast or faster (6.6 vs
# 7.5 s for 400 steps); level 0 ran 6x slower. 2-core CPU VM, jax 0.10.2.
FAST_COMPILE_CPU_FLAGS = ("--xla_backend_optimization_level=1",)


def recommended_cpu_flags(cell: str | None = None, mode: str = "train") -> tuple[str, ...]:
  """The XLA:CPU flags measured best for ``cell`` ("lstm", "gru") in
  ``mode`` ("train" or "infer"); :data:`RECOMMENDED_CPU_FLAGS` for any
  other cell or None (a program that runs several kinds)."""
  if mode not in MODES:
    raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
  if cell is None:
    return RECOMMENDED_CPU_FLAGS
  return CELL_CPU_FLAGS.get((cell, mode), RECOMMENDED_CPU_FLAGS)


def use_recommended_cpu_flags(extra: tuple[str, ...] = (), cell: str | None = None,
                              mode: str = "train") -> list[str]:
  """Appends the recommended flags for ``cell`` and ``mode``
  (:func:`recommended_cpu_flags`) and ``extra`` ones to ``XLA_FLAGS``
  unless the user set them.

  Returns the flags that were added. A flag already named in ``XLA_FLAGS``
  (with any value) is left as the user set it. Adds nothing (and returns
  ``[]``) once a JAX backend has started.
  """
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    if xla_bridge.backends_are_initialized():
      return []  # too late: XLA has read XLA_FLAGS already
  except (ImportError, AttributeError):
    pass
  current = os.environ.get("XLA_FLAGS", "")
  added = [f for f in recommended_cpu_flags(cell, mode) + tuple(extra)
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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
MALLOC_SETTINGS = {"mmap_threshold": 1 << 30, "trim_threshold": 1 << 30,
                   "top_pad": 256 << 20, "arena_max": 1}


def use_recommended_malloc() -> bool:
  """Makes glibc's malloc keep and reuse freed memory instead of returning
  it to the system (``mallopt``: blocks up to 1 GiB from the heap, no
  trimming below 1 GiB free, the heap grown 256 MiB at a time, one arena
  for every thread: a thread's own arena holds at most 64 MiB, so XLA's
  larger buffers, allocated on its pool's threads, were mmapped anyway).

  XLA:CPU allocates a program's buffers at each call; by default glibc
  serves blocks over 128 KiB (then up to 32 MiB) with fresh ``mmap``s, so
  every step of a training loop page-faults its buffers in again: the
  LSTM's native training step at 32x128x128x256 took 84-95 ms that way and
  61-67 ms with this (2-core AMD EPYC VM, 2026-12-02; docs/performance.md);
  at 64x64x256x512 it took 30,000 page faults and 60 ms of system time per
  step until the single arena (248 -> 218 ms).
  The price: the process keeps its peak memory. Any time before the work
  (the experiment binaries and benchmarks call it first thing). Returns
  whether it applied (glibc on Linux only; False elsewhere).
  """
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False  # not glibc (musl has no mallopt)
  ok = [mallopt(_M_MMAP_THRESHOLD, MALLOC_SETTINGS["mmap_threshold"]),
        mallopt(_M_TRIM_THRESHOLD, MALLOC_SETTINGS["trim_threshold"]),
        mallopt(_M_TOP_PAD, MALLOC_SETTINGS["top_pad"]),
        mallopt(_M_ARENA_MAX, MALLOC_SETTINGS["arena_max"])]
  return all(v == 1 for v in ok)
