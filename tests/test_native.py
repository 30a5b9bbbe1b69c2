"""The native CPU kernels of the LSTM and GRU (rnn_zoo.native) against the
scan runner."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import native

pytestmark = pytest.mark.skipif(not native.available(),
                                reason="no C++ compiler for the native kernel here")

# (B, T, I, H): H a multiple of 16 and not; B a multiple of the 6-row tile and
# not; one step; fewer units than one 16-lane group; I over two 16-column
# groups and a partial one (the LSTM's dx, split between the threads).
SHAPES = [(3, 5, 4, 20), (8, 7, 3, 64), (13, 6, 5, 33), (6, 1, 2, 16), (2, 4, 3, 5),
          (32, 3, 8, 256), (5, 4, 37, 24)]


CELLS = {"lstm": rz.LSTM, "gru": rz.GRU}


def _run(cell, p, xs, init, impl, **kw):
  return rz.unroll(cell, p, xs, initial_carry=init, impl=impl, **kw)


def _random_params(cell, key, I):
  # Nonzero biases (GRU's start at zero): the kernels add them themselves.
  p = cell.init(key, I)
  return {k: v + 0.3 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
          if k.startswith("b") else v for i, (k, v) in enumerate(sorted(p.items()))}


# Every shape in the caller's (batch-major) layout; the other layouts on two.
CASES = [(name, shape, "batch_major") for name in sorted(CELLS) for shape in SHAPES] + [
    (name, shape, layout) for name in sorted(CELLS) for shape in (SHAPES[2], SHAPES[4])
    for layout in ("time_major", "reverse")]


@pytest.mark.parametrize("name, shape, layout", CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_values_and_gradients_match_the_scan_runner(name, shape, layout):
  B, T, I, H = shape
  cell = CELLS[name](H)
  k = jax.random.split(jax.random.key(0), 5)
  p = _random_params(cell, k[0], I)
  time_major = layout == "time_major"
  kw = {"time_major": time_major, "reverse": layout == "reverse"}
  xs = jax.random.normal(k[1], (T, B, I) if time_major else (B, T, I))
  zeros, treedef = jax.tree.flatten(cell.initial_carry((B,)))
  init = jax.tree.unflatten(treedef, [
      0.5 * jax.random.normal(kk, z.shape)
      for z, kk in zip(zeros, jax.random.split(k[2], len(zeros)))])
  r = jax.random.normal(k[4], xs.shape[:2] + (H,))

  def loss(p, xs, init, impl):
    ys, carry = _run(cell, p, xs, init, impl, **kw)
    return jnp.sum(ys * r) + sum(jnp.sum(jnp.sin(c) * (i + 1))
                                 for i, c in enumerate(carry))

  out_n = jax.jit(lambda *a: _run(cell, *a, "native", **kw))(p, xs, init)
  out_s = jax.jit(lambda *a: _run(cell, *a, "fused", **kw))(p, xs, init)
  for a, b in zip(jax.tree.leaves(out_n), jax.tree.leaves(out_s)):
    np.testing.assert_allclose(a, b, atol=2e-6, rtol=2e-6)
  g_n = jax.jit(jax.grad(lambda *a: loss(*a, "native"), (0, 1, 2)))(p, xs, init)
  g_s = jax.jit(jax.grad(lambda *a: loss(*a, "fused"), (0, 1, 2)))(p, xs, init)
  for a, b in zip(jax.tree.leaves(g_n), jax.tree.leaves(g_s)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("batch_major", [False, True], ids=["time_major", "batch_major"])
@pytest.mark.parametrize("with_x", [True, False], ids=["x", "no_x"])
def test_weight_grads_match_a_float64_gemm(batch_major, with_x):
  # 391 rows: a chunk of the kernel's rows (256), then a partial one;
  # N = 136: full 64-column panels and a partial vector; I = 13: a register
  # tile of C across x's and h's columns.
  T, B, I, H, N = 23, 17, 13, 21, 136
  k = jax.random.split(jax.random.key(3), 4)
  lead = (B, T) if batch_major else (T, B)
  xs = jax.random.normal(k[0], lead + (I,))
  ys = jax.random.normal(k[1], lead + (H,))
  d = jax.random.normal(k[2], lead + (N,))
  h0 = jax.random.normal(k[3], (B, H))
  out = jax.jit(lambda *a: native.weight_grads(*a, batch_major=batch_major))(
      h0, ys, d, xs if with_x else None)
  tm = (lambda a: np.swapaxes(np.asarray(a, np.float64), 0, 1)) if batch_major else (
      lambda a: np.asarray(a, np.float64))
  x64, y64, d64 = tm(xs), tm(ys), tm(d)
  h_prev = np.concatenate([np.asarray(h0, np.float64)[None], y64[:-1]])
  want = [np.einsum("tbh,tbn->hn", h_prev, d64), d64.sum((0, 1))]
  if with_x:
    want.insert(0, np.einsum("tbi,tbn->in", x64, d64))
  assert len(out) == len(want)
  for got, ref in zip(out, want):
    assert got.shape == ref.shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


def test_lstm_recurrence_over_a_given_projection_matches_the_scan_runner():
  # The public recurrence over xp = x W_ih (its own backward target, without
  # dx, and the weight gradients without x).
  B, T, I, H = 5, 7, 6, 20
  cell = rz.LSTM(H)
  k = jax.random.split(jax.random.key(4), 4)
  p = _random_params(cell, k[0], I)
  xs = jax.random.normal(k[1], (B, T, I))
  h0, c0 = (0.5 * jax.random.normal(kk, (B, H)) for kk in jax.random.split(k[2]))
  r = jax.random.normal(k[3], (B, T, H))

  def loss_native(p, xs):
    ys, h, c = native.lstm_recurrence(p["w_hh"], p["b"], xs @ p["w_ih"], h0, c0, True)
    return jnp.sum(ys * r) + jnp.sum(jnp.sin(h)) + 2 * jnp.sum(jnp.sin(c))

  def loss_scan(p, xs):
    ys, carry = rz.unroll(cell, p, xs, initial_carry=rz.LSTMCarry(h=h0, c=c0),
                          impl="fused")
    return jnp.sum(ys * r) + jnp.sum(jnp.sin(carry.h)) + 2 * jnp.sum(jnp.sin(carry.c))

  np.testing.assert_allclose(jax.jit(loss_native)(p, xs), jax.jit(loss_scan)(p, xs),
                             rtol=2e-6)
  g_n = jax.jit(jax.grad(loss_native, (0, 1)))(p, xs)
  g_s = jax.jit(jax.grad(loss_scan, (0, 1)))(p, xs)
  for a, b in zip(jax.tree.leaves(g_n), jax.tree.leaves(g_s)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_it_is_the_default_on_avx512_and_not_with_lengths(name):
  """impl="auto" runs the kernels on the CPUs they are tuned for (AVX-512),
  the fused scan elsewhere; impl="native" runs them on any x86-64 CPU."""
  cell = CELLS[name](8)
  p = cell.init(jax.random.key(0), 3)
  xs = jnp.ones((2, 4, 3))
  hlo = lambda f: jax.jit(f).lower(p, xs).as_text()
  # The LSTM's forward kernel computes the input projection itself.
  target = f"rnn_zoo_{name}_" + ("fused_forward" if name == "lstm" else "forward")
  default = hlo(lambda p, x: rz.unroll(cell, p, x)[0])
  avx512 = "avx512f" in open("/proc/cpuinfo").read().split()
  assert native.untuned_cpu() is None if avx512 else "tuned for AVX-512" in native.untuned_cpu()
  assert (target + "_infer" in default) == avx512
  assert target + "_infer" in hlo(lambda p, x: rz.unroll(cell, p, x, impl="native")[0])
  assert f"rnn_zoo_{name}_" not in hlo(
      lambda p, x: rz.unroll(cell, p, x, lengths=jnp.array([4, 2]))[0])
  assert f"rnn_zoo_{name}_" not in hlo(
      lambda p, x: rz.unroll(cell, p, x, impl="fused")[0])
  grad_hlo = hlo(jax.grad(lambda p, x: jnp.sum(rz.unroll(cell, p, x, impl="native")[0])))
  # The LSTM's backward kernel computes dx too; the weight gradients are
  # one native GEMM for both cells.
  backward = "rnn_zoo_lstm_layer_backward" if name == "lstm" else "rnn_zoo_gru_backward"
  assert target + "_train" in grad_hlo and backward in grad_hlo
  assert "rnn_zoo_recurrent_weight_grads" in grad_hlo if name == "gru" else (
      "rnn_zoo_weight_grads" in grad_hlo)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_a_stack_trains_through_it_like_the_scan(name):
  stack = rz.StackedRNN.of(CELLS[name](24), 2)
  p = stack.init(jax.random.key(0), 5)
  xs = jax.random.normal(jax.random.key(1), (7, 9, 5))
  target = jax.random.normal(jax.random.key(2), (7, 9, 24))

  def loss(p, impl):
    return jnp.mean((stack.apply(p, xs, impl=impl)[0] - target) ** 2)

  grads = [jax.jit(jax.grad(loss), static_argnums=1)(p, impl) for impl in ("native", "fused")]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_vmap_runs_each_member(name):
  cell = CELLS[name](16)
  ps = jax.vmap(lambda k: cell.init(k, 3))(jax.random.split(jax.random.key(0), 3))
  xs = jax.random.normal(jax.random.key(1), (3, 2, 5, 3))
  f = lambda impl: jax.jit(jax.vmap(lambda p, x: rz.unroll(cell, p, x, impl=impl)[0]))
  np.testing.assert_allclose(f("native")(ps, xs), f("fused")(ps, xs), atol=2e-6)


@pytest.mark.parametrize("what, make, match", [
    ("gru_cho", lambda: (rz.GRU(8, variant="cho"), {}), "only, not GRUCho"),
    ("rnn", lambda: (rz.SimpleRNN(8), {}), "only, not SimpleRNN"),
    ("lengths", lambda: (rz.LSTM(8), {"lengths": jnp.array([4, 1])}),
     "no lengths or hidden_probes"),
    ("bfloat16", lambda: (rz.LSTM(8, dtype=jnp.bfloat16), {}), "float32 only"),
    ("remat", lambda: (rz.LSTM(8), {"remat": 2}), "the native kernel does not combine with remat"),
    ("resets", lambda: (rz.LSTM(8), {"resets": jnp.zeros((2, 4), bool)}),
     "the native kernel takes no resets"),
])
def test_native_true_says_why_it_cannot_run(what, make, match):
  del what
  cell, kw = make()
  p = cell.init(jax.random.key(0), 3)
  with pytest.raises(ValueError, match=f"impl='native' cannot run here: .*{match}"):
    rz.unroll(cell, p, jnp.ones((2, 4, 3)), impl="native", **kw)


def test_forward_mode_falls_back_to_the_scan():
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  x = jnp.ones((2, 4, 3))
  f = lambda impl: lambda x: jnp.sum(rz.unroll(cell, p, x, impl=impl)[0])
  _, t_default = jax.jvp(f("auto"), (x,), (x,))
  _, t_scan = jax.jvp(f("scan"), (x,), (x,))
  np.testing.assert_allclose(t_default, t_scan, rtol=1e-6)
  with pytest.raises(ValueError, match="impl='native' does not support forward-mode"):
    jax.jvp(f("native"), (x,), (x,))


def test_a_failed_build_is_a_clear_error_and_the_runner_falls_back(tmp_path, monkeypatch):
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "/bin/false")
  assert not native.available()
  with pytest.raises(ValueError, match="building the native recurrence kernels failed"):
    native.load()
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  assert "building the native recurrence kernels failed" in native.load_error()
  impl, why = rz.explain_impl(cell, p, jnp.ones((2, 4, 3)))
  assert impl == "fused" and "building the native recurrence kernels failed" in why
  ys, _ = rz.unroll(cell, p, jnp.ones((2, 4, 3)))  # the scan runner, silently
  assert ys.shape == (2, 4, 8)


@pytest.mark.slow
def test_one_thread_and_two_give_the_same_bits(tmp_path):
  # Each hidden unit's arithmetic does not depend on how units are split
  # between threads: a race between the threads would show up here.
  code = ("import jax, numpy as np, rnn_zoo as rz\n"
          "xs = jax.random.normal(jax.random.key(1), (9, 30, 7))\n"
          "out = []\n"
          "for cell in (rz.LSTM(80), rz.GRU(80)):\n"
          "  p = cell.init(jax.random.key(0), 7)\n"
          "  g, gx = jax.jit(jax.grad(lambda p, xs: (rz.unroll(cell, p, xs, impl='native')[0] ** 2).sum(), (0, 1)))(p, xs)\n"
          "  out += [np.asarray(g[k]).ravel() for k in sorted(g)] + [np.asarray(gx).ravel()]\n"
          "np.save(__import__('sys').argv[1], np.concatenate(out))\n")
  outs = []
  for threads in ("1", "2"):
    path = str(tmp_path / f"threads_{threads}.npy")
    env = dict(os.environ, RNN_ZOO_NATIVE_THREADS=threads)
    subprocess.run([sys.executable, "-c", code, path], env=env, check=True)
    outs.append(np.load(path))
  np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.slow
def test_several_devices_keep_the_scan_runner():
  # Sharded over devices, XLA would gather a custom call's operands onto each.
  code = ("import jax, jax.numpy as jnp, rnn_zoo as rz\n"
          "from rnn_zoo import native\n"
          "cell = rz.LSTM(8); p = cell.init(jax.random.key(0), 3)\n"
          "hlo = jax.jit(lambda p, x: rz.unroll(cell, p, x)[0]).lower(p, jnp.ones((2, 4, 3))).as_text()\n"
          "print('custom call' if 'rnn_zoo_lstm' in hlo else 'scan')\n"
          "print(native.status())\n")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                       capture_output=True, text=True).stdout.splitlines()
  assert out[0] == "scan"
  assert out[1].startswith("not used: the native kernel runs in a one-device process (2 devices")


@pytest.mark.slow
def test_helpers_that_start_late_or_inline_leave_the_call_to_the_others(tmp_path):
  # XLA may run two of these calls at once on its pool, each waiting for a
  # helper the other one's thread would have to run: a call must not wait
  # for helpers that do not come.
  src = pathlib.Path(__file__).parent / "native" / "team_test.cc"
  exe = tmp_path / "team_test"
  subprocess.run(["g++", "-O1", "-std=c++17", "-pthread", "-march=native", "-isystem",
                  jax.ffi.include_dir(), "-I", str(native.SOURCE.parent), str(src),
                  "-o", str(exe)], check=True)
  out = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
  checks = dict(line.rsplit(" ", 1) for line in out.stdout.splitlines())
  assert len(checks) == 9 and out.returncode == 0, out.stdout
  assert set(checks.values()) == {"ok"}, out.stdout
  assert checks["helpers_on_callers_cpu_get_their_affinity_back"] == "ok"


def test_the_explicit_build_step(tmp_path, monkeypatch, capsys):
  from rnn_zoo.native.__main__ import main  # pylint: disable=g-import-not-at-top
  untuned = native.untuned_cpu()
  assert main(["status"]) == (0 if untuned is None else 1)
  assert capsys.readouterr().out.strip() == "rnn_zoo.native: " + (
      "used for float32 LSTM and GRU layers without lengths or probes"
      if untuned is None else f"not used: {untuned}")
  assert main(["frobnicate"]) == 2
  # A build into a fresh cache compiles there: tested from the installed
  # wheel (tests/test_package.py), which runs this step in a new process
  # (one compile of rnn.cc for both). Here: a cache that holds the build
  # already, and a compiler that fails.
  assert main(["build"]) == 0
  out = capsys.readouterr().out.strip()
  assert out == f"rnn_zoo.native: built {native.build()}"
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "other"))
  monkeypatch.setenv("CXX", "/bin/false")
  assert main(["build"]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("rnn_zoo.native: not built: building the native recurrence "
                        "kernels failed") and "\n" not in err


def test_off_by_default_where_untested(monkeypatch):
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
  monkeypatch.delenv("RNN_ZOO_NATIVE_UNTESTED", raising=False)
  assert native.load_error() == (
      "the native kernels are tested on x86-64 Linux only, not aarch64 linux "
      "(RNN_ZOO_NATIVE_UNTESTED=1 builds them anyway)")
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  impl, why = rz.explain_impl(cell, p, jnp.ones((2, 4, 3)))
  assert impl == "fused" and "tested on x86-64 Linux only" in why
  monkeypatch.setenv("RNN_ZOO_NATIVE_UNTESTED", "1")
  assert native.untested_platform() is None


def test_every_operand_shape_is_checked_before_a_kernel_reads_it():
  """A short bias was read past its end (different garbage on each call)."""
  T, B, H, I = 4, 3, 8, 5
  f = lambda *s: jnp.ones(s, jnp.float32)
  with pytest.raises(ValueError, match=r"lstm_recurrence: b must have shape \(32,\), got \(1,\)"):
    native.lstm_recurrence(f(H, 4 * H), f(1), f(T, B, 4 * H), f(B, H), f(B, H))
  with pytest.raises(ValueError, match=r"lstm_recurrence: xp must be \[T, B, 32\], got shape"):
    native.lstm_recurrence(f(H, 4 * H), f(4 * H), f(T, B, 4 * H + 1), f(B, H), f(B, H))
  with pytest.raises(ValueError, match=r"lstm_recurrence: c0 must have shape \(3, 8\)"):
    jax.grad(lambda b: native.lstm_recurrence(f(H, 4 * H), b, f(T, B, 4 * H), f(B, H),
                                              f(B, H + 1))[0].sum())(f(4 * H))
  with pytest.raises(ValueError, match=r"lstm_layer: w_ih must have shape \(5, 32\)"):
    native.lstm_layer(f(I + 1, 4 * H), f(H, 4 * H), f(4 * H), f(T, B, I), f(B, H), f(B, H))
  with pytest.raises(ValueError, match=r"lstm_layer: h0 must be float32, got int32"):
    native.lstm_layer(f(I, 4 * H), f(H, 4 * H), f(4 * H), f(T, B, I),
                      jnp.ones((B, H), jnp.int32), f(B, H))
  with pytest.raises(ValueError, match=r"gru_recurrence: b_hn must have shape \(8,\)"):
    native.gru_recurrence(f(H, 3 * H), f(3 * H), f(2), f(B, T, 3 * H), f(B, H), True)
  with pytest.raises(ValueError, match=r"weight_grads: d must be \[T, B, 32\] with"):
    native.weight_grads(f(B, H), f(T, B, H), f(T + 1, B, 4 * H))


def test_a_cache_others_can_write_is_refused(tmp_path, monkeypatch):
  """The library is dlopen'ed: a folder another user can write could hold
  a planted one. Refused before anything is built or loaded."""
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path))
  (tmp_path / "native").mkdir()
  os.chmod(tmp_path / "native", 0o777)
  with pytest.raises(ValueError, match=r"native kernels' cache .*native is writable by other "
                     r"users or not yours \(mode 0o777"):
    native.build()
  assert not list((tmp_path / "native").iterdir())


def test_the_build_lock_is_not_opened_through_a_symlink(tmp_path, monkeypatch):
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "/bin/false")          # nothing may be compiled here
  (tmp_path / "native").mkdir(mode=0o700)
  victim = tmp_path / "victim.txt"
  victim.write_text("keep")
  os.symlink(victim, tmp_path / "native" / ".lock")
  with pytest.raises(ValueError, match=r"cannot open the native build lock .* symlink"):
    native.build()
  assert victim.read_text() == "keep"


def test_a_broken_compiler_output_is_not_cached(tmp_path, monkeypatch):
  fake = tmp_path / "fakecxx"
  fake.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\necho garbage > "$2"\n')
  fake.chmod(0o755)
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("CXX", str(fake))
  with pytest.raises(ValueError, match="the built native library does not load or lacks a "
                     "kernel .*; not cached"):
    native.build()
  assert not list((tmp_path / "cache" / "native").glob("*.so"))


@pytest.mark.parametrize("target, args, message", [
    ("rnn_zoo_lstm_forward_infer", lambda z: (z(4, 16), z(1), z(3, 2, 16), z(2, 4), z(2, 4)),
     r"b must be \[4H\]"),
    ("rnn_zoo_gru_forward_infer", lambda z: (z(4, 12), z(12), z(3), z(3, 2, 12), z(2, 4)),
     r"b_hn must be \[H\]"),
    ("rnn_zoo_gru_forward_infer", lambda z: (z(4, 12), z(11), z(4), z(3, 2, 12), z(2, 4)),
     r"b must be \[3H\]"),
])
def test_the_kernels_check_the_bias_length_themselves(target, args, message):
  """A bias of length 1 was read past its end (different garbage on each
  call); the Python wrappers check it, and so does the C++ handler when
  called directly."""
  z = lambda *shape: jnp.zeros(shape, jnp.float32)
  outs = (jax.ShapeDtypeStruct((3, 2, 4), jnp.float32),)
  if "lstm" in target:
    outs += (jax.ShapeDtypeStruct((2, 4), jnp.float32),)
  with pytest.raises(Exception, match=message):
    jax.block_until_ready(native._call(target, outs, *args(z), batch_major=False))
