r"""Paired A/B timing of the native kernels: two versions of ``rnn.cc`` in one
process.

Builds ``rnn_zoo/native/rnn.cc`` at a git revision (``--base``, default
HEAD) and as it is in the working tree (or at ``--new``), each with
``benchmarks/native_ab_harness.cc`` and the library's compiler flags, loads
both, and times one kernel of each version round by round on the same
inputs (drift hits both alike). Reports each version's median and rate,
the paired median ratio (new time / base time per round, < 1: the new
version is faster) and the largest difference between the two versions'
outputs (0: the same bits). The ratios of ``docs/performance.md``'s
kernel changes come from this kind of run.

Kernels (the LSTM layer's, batch-major as ``rz.unroll`` calls them):
``forward`` (inference, the projection of x inside), ``forward_train``
(the same, writing the activations the backward pass reads), ``backward``
(with dx) and ``weight_grads``.

A version before the LSTM's fused projection (2026-12-03) fails to build,
with the compiler's message. One without ``weight_grads``, or whose
backward kernel computes no dx, is not compared on that kernel (the run
says so).

Usage::

  python -m benchmarks.native_ab --kernels=weight_grads --shapes=32x128x128x256
  python -m benchmarks.native_ab --base=HEAD~3 --kernels=forward,backward --rounds=40
"""

from __future__ import annotations

import ctypes
import datetime
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import common
from rnn_zoo import native

ROOT = pathlib.Path(__file__).resolve().parent.parent
HARNESS = pathlib.Path(__file__).with_name("native_ab_harness.cc")
SOURCE = "rnn_zoo/native/rnn.cc"   # includes the other sources of its folder
KERNELS = ("forward", "forward_train", "backward", "weight_grads")

_BASE = flags.DEFINE_string("base", "HEAD", "Git revision of the base version "
                            "('': the working tree's rnn.cc).")
_NEW = flags.DEFINE_string("new", "", "Git revision of the new version (default: "
                           "the working tree's rnn.cc).")
_KERNELS = flags.DEFINE_list("kernels", list(KERNELS), f"Kernels: {', '.join(KERNELS)}.")
_SHAPES = flags.DEFINE_string("shapes", "32x128x128x256,64x64x256x512",
                              "Comma-separated BxTxIxH shapes.")
_ROUNDS = flags.DEFINE_integer("rounds", 20, "Timed rounds (medians).")
_THREADS = flags.DEFINE_integer("threads", None, "Kernel threads (default: one per "
                                "core, as in the library).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/native_ab/<timestamp>).")


def _git(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                        check=False)


def source_at(revision: str) -> dict[str, str]:
  """The native sources at ``revision`` ("" : the working tree's): rnn.cc
  and the headers beside it, by file name."""
  folder = pathlib.PurePosixPath(SOURCE).parent
  if not revision:
    return {p.name: p.read_text() for p in sorted((ROOT / folder).iterdir())
            if p.suffix in (".cc", ".h")}
  proc = _git("show", f"{revision}:{SOURCE}")
  if proc.returncode != 0:
    raise ValueError(f"--base/--new: no {SOURCE} at git revision {revision!r} "
                     f"({proc.stderr.strip()})")
  names = _git("ls-tree", "--name-only", revision, f"{folder}/").stdout.split()
  sources = {}
  for path in names:
    if pathlib.PurePosixPath(path).suffix in (".cc", ".h"):
      sources[pathlib.PurePosixPath(path).name] = _git("show", f"{revision}:{path}").stdout
  return sources


def features(sources: dict[str, str]) -> dict[str, bool]:
  """Which of the harness's kernels the sources have."""
  text = "\n".join(sources.values())
  return {"weight_grads": "void weight_grads(" in text,
          "backward_dx": "float* dx = nullptr" in text}


def build(sources: dict[str, str], folder: pathlib.Path, name: str) -> ctypes.CDLL:
  """The harness over ``sources``, built as the library builds rnn.cc."""
  tree = folder / name
  tree.mkdir()
  for file_name, text in sources.items():
    (tree / file_name).write_text(text)
  src = tree / "rnn.cc"
  lib = folder / f"{name}.so"
  cxx = os.environ.get("CXX") or "g++"
  has = features(sources)
  cmd = [cxx, *native.CXXFLAGS, "-isystem", jax.ffi.include_dir(),
         f"-DRNN_CC=\"{src}\"", f"-DRNN_HAS_WEIGHT_GRADS={int(has['weight_grads'])}",
         f"-DRNN_HAS_BACKWARD_DX={int(has['backward_dx'])}", str(HARNESS), "-o", str(lib)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise ValueError(f"building the {name} version failed ({' '.join(cmd)}):\n"
                     f"{proc.stderr.strip()[-2000:]}")
  return ctypes.CDLL(str(lib))


def _ptr(a):
  return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def make_call(lib, kernel: str, shape, threads: int, seed: int = 0):
  """A no-argument call of ``kernel`` of ``lib`` on fixed random inputs, and
  the arrays it writes (compared between versions). FLOPs of one call."""
  B, T, I, H = shape
  G = 4 * H
  rng = np.random.default_rng(seed)
  f = lambda *s: np.ascontiguousarray(rng.standard_normal(s).astype(np.float32) * 0.1)
  w, w_ih, b, x, h0, c0 = f(H, G), f(I, G), f(G), f(B, T, I), f(B, H), f(B, H)
  dys = f(B, T, H)
  ys, cs, acts = np.zeros((B, T, H), np.float32), np.zeros((T, B, H), np.float32), \
      np.zeros((T, B, G), np.float32)
  c_out = np.zeros((B, H), np.float32)
  L, i32 = ctypes.c_int64, ctypes.c_int
  fwd = lambda train: lib.ab_forward(
      _ptr(w), _ptr(b), _ptr(x), _ptr(w_ih), L(I), _ptr(h0), _ptr(c0), L(T), L(B), L(H),
      i32(1), _ptr(ys), _ptr(cs) if train else None, _ptr(acts) if train else None,
      None if train else _ptr(c_out), i32(threads))
  if kernel == "forward":
    return (lambda: fwd(False)), (ys, c_out), 2.0 * B * T * (I + H) * G
  fwd(True)  # the residuals of the backward kernels
  if kernel == "forward_train":
    return (lambda: fwd(True)), (ys, cs, acts), 2.0 * B * T * (I + H) * G
  dz, dx = np.zeros((B, T, G), np.float32), np.zeros((B, T, I), np.float32)
  dh0, dc0 = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
  if kernel == "backward":
    call = lambda: lib.ab_backward(
        _ptr(w), _ptr(acts), _ptr(cs), _ptr(c0), _ptr(dys), _ptr(h0), _ptr(c0), L(T),
        L(B), L(H), i32(1), _ptr(dz), _ptr(dh0), _ptr(dc0), _ptr(w_ih), L(I), _ptr(dx),
        i32(threads))
    return call, (dz, dx, dh0, dc0), 2.0 * B * T * (H + I) * G
  if kernel == "weight_grads":
    d = f(B, T, G)
    dw_ih, dw_hh, db = (np.zeros((I, G), np.float32), np.zeros((H, G), np.float32),
                        np.zeros(G, np.float32))
    call = lambda: lib.ab_weight_grads(
        _ptr(x), L(I), _ptr(h0), _ptr(ys), L(H), _ptr(d), L(G), L(T), L(B), i32(1),
        _ptr(dw_ih), _ptr(dw_hh), _ptr(db), i32(threads))
    return call, (dw_ih, dw_hh, db), 2.0 * B * T * (I + H + 1) * G
  raise ValueError(f"--kernels must name kernels from {list(KERNELS)}, got {kernel!r}")


def compare(libs: dict, kernel: str, shape, threads: int, rounds: int) -> dict:
  """Times ``kernel`` of both versions round by round; the row of the report."""
  calls, outs = {}, {}
  for name, lib in libs.items():
    calls[name], outs[name], flops = make_call(lib, kernel, shape, threads)
  times = common.time_round_robin(calls, rounds, settle_s=0.005)
  for call in calls.values():
    call()  # the same inputs, so the same outputs: compare the last ones
  diff = max(float(np.abs(a - b).max()) if a.size else 0.0
             for a, b in zip(outs["base"], outs["new"]))
  base, new = np.array(times["base"]), np.array(times["new"])
  return {"kernel": kernel, "shape": list(shape), "flops": flops,
          "base_ms": float(np.median(base)) * 1e3, "new_ms": float(np.median(new)) * 1e3,
          "ratio": float(np.median(new / base)), "max_abs_diff": diff,
          "base_all_ms": (base * 1e3).tolist(), "new_all_ms": (new * 1e3).tolist()}


def report_markdown(results: dict) -> str:
  lines = [
      "# Native kernels: paired A/B", "",
      f"Command: `{results['command']}`  ",
      f"Date: {results['date']}; {results['cpu_count']} CPU cores, "
      f"{results['threads']} kernel threads  ",
      f"base: `{results['base']}`, new: `{results['new']}`", "",
      "Medians of interleaved rounds; `new / base` is the median over rounds of "
      "the new version's time over the base's in the same round (< 1: new is "
      "faster); `max |diff|` the largest difference between their outputs "
      "(0: the same bits).", "",
      "| kernel | B×T×I×H | base ms | new ms | base GFLOP/s | new GFLOP/s | new / base | max \\|diff\\| |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in results["rows"]:
    lines.append(
        f"| {r['kernel']} | {'×'.join(map(str, r['shape']))} | {r['base_ms']:.2f} | "
        f"{r['new_ms']:.2f} | {r['flops'] / r['base_ms'] / 1e6:.0f} | "
        f"{r['flops'] / r['new_ms'] / 1e6:.0f} | {r['ratio']:.3f} | "
        f"{r['max_abs_diff']:.2e} |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  bad = [k for k in _KERNELS.value if k not in KERNELS]
  if bad or not _KERNELS.value:
    sys.exit(f"error: --kernels must name kernels from {list(KERNELS)}, got {_KERNELS.value}")
  try:
    shapes = common.parse_shapes(_SHAPES.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if any(s[4] != 1 for s in shapes):
    sys.exit(f"error: --shapes entries must be BxTxIxH (one layer), got {_SHAPES.value!r}")
  if _ROUNDS.value <= 0:
    sys.exit(f"error: --rounds must be positive, got {_ROUNDS.value}")
  threads = _THREADS.value or os.cpu_count() or 1
  if threads <= 0:
    sys.exit(f"error: --threads must be positive, got {threads}")
  out = common.run_folder(_OUT.value, "native_ab")
  with tempfile.TemporaryDirectory() as tmp:
    try:
      sources = {"base": source_at(_BASE.value), "new": source_at(_NEW.value)}
      libs = {"base": build(sources["base"], pathlib.Path(tmp), "base")}
      if sources["new"] == sources["base"]:
        # The same source: a copy of the build, loaded as a library of its own.
        copy = pathlib.Path(tmp) / "new.so"
        shutil.copyfile(pathlib.Path(tmp) / "base.so", copy)
        libs["new"] = ctypes.CDLL(str(copy))
      else:
        libs["new"] = build(sources["new"], pathlib.Path(tmp), "new")
    except ValueError as e:
      sys.exit(f"error: {e}")
    has = {name: features(src) for name, src in sources.items()}
    rows = []
    for kernel in _KERNELS.value:
      need = {"weight_grads": "weight_grads", "backward": "backward_dx"}.get(kernel)
      lacking = [name for name in has if need and not has[name][need]]
      if lacking:
        what = ("a weight_grads kernel" if need == "weight_grads"
                else "dx in its backward kernel")
        print(f"{kernel}: skipped, no {what} in the {' and '.join(lacking)} "
              f"version{'s' if len(lacking) > 1 else ''}", flush=True)
        continue
      for shape in shapes:
        row = compare(libs, kernel, shape[:4], threads, _ROUNDS.value)
        print(f"{kernel} {'x'.join(map(str, shape[:4]))}: base {row['base_ms']:.2f} ms, "
              f"new {row['new_ms']:.2f} ms, new/base {row['ratio']:.3f}, "
              f"max |diff| {row['max_abs_diff']:.2e}", flush=True)
        rows.append(row)
  results = {"command": "python -m benchmarks.native_ab " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "cpu_count": os.cpu_count(), "threads": threads, "base": _BASE.value,
             "new": _NEW.value or "working tree", "rows": rows}
  common.write_report(out, report_markdown(results), results)
  # The harness's pool threads wait forever; leave without joining them.
  sys.stdout.flush()
  os._exit(0)


if __name__ == "__main__":
  app.run(main)
