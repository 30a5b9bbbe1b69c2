"""The choice of implementation: select_impl is a pure function of the
facts, so every rule is a row here; explain_impl and the deprecated flags
go through the real runner."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import native
from rnn_zoo.runner.select import (Platform, Request, from_legacy_flags,
                                   select_impl)

LSTM, GRU, RNN, CHO, MIN = (rz.LSTM(8), rz.GRU(8), rz.SimpleRNN(8),
                            rz.GRUCho(8), rz.MinGRU(8))
CPU = Platform()
GPU = Platform(backend="gpu", cudnn_error=None)
TWO = Platform(device_count=2)
NO_BUILD = Platform(native_error="building the native recurrence kernels failed")
NO_CUDNN = Platform(cudnn_error="cuDNN runs on an NVIDIA GPU, not cpu")
AVX2 = Platform(native_untuned="the native kernels are tuned for AVX-512 and this CPU has none")

# (cell, request, platform, impl, a phrase of the reason)
AUTO = [
    (LSTM, Request(), CPU, "native", "the native kernels apply"),
    (GRU, Request(reverse=True), CPU, "native", "the native kernels apply"),
    (LSTM, Request(lengths=True), CPU, "fused", "takes no lengths or hidden_probes"),
    (LSTM, Request(probes=True), CPU, "fused", "takes no lengths or hidden_probes"),
    (LSTM, Request(float32="w_hh is float64"), CPU, "fused", "float32 only (w_hh is float64)"),
    (LSTM, Request(empty=True), CPU, "fused", "a step and a row"),
    (LSTM, Request(), GPU, "fused", "runs on the CPU, not gpu"),
    (LSTM, Request(), TWO, "fused", "one-device process (2 devices"),
    (LSTM, Request(), NO_BUILD, "fused", "building the native recurrence kernels failed"),
    (LSTM, Request(), AVX2, "fused", "tuned for AVX-512"),
    (GRU, Request(lengths=True), AVX2, "fused", "takes no lengths"),
    (LSTM, Request(remat_chunk=1), CPU, "scan", "does not combine with remat"),
    (LSTM, Request(remat_chunk=8), CPU, "scan", "does not combine with remat"),
    (LSTM, Request(resets=True), CPU, "scan", "takes no resets"),
    (LSTM, Request(all_carries=True), CPU, "scan", "does not return every carry"),
    (RNN, Request(), CPU, "fused", "a PointwiseCell (SimpleRNN)"),
    (CHO, Request(), CPU, "scan", "needs a PointwiseCell"),
    (MIN, Request(), CPU, "parallel", "associative scan"),
    (MIN, Request(lengths=True, resets=True, all_carries=True), CPU, "parallel", "associative"),
    (MIN, Request(remat_chunk=4), CPU, "scan", "parallel scan does not combine with remat"),
    # What the deprecated flags rule out.
    (LSTM, Request(excluded=frozenset({"native"})), CPU, "fused", "excluded by native=False"),
    (LSTM, Request(excluded=frozenset({"native", "fused"})), CPU, "scan", "excluded by fused=False"),
    (MIN, Request(excluded=frozenset({"parallel"})), CPU, "scan", "excluded by parallel=False"),
]


@pytest.mark.parametrize("cell, req, platform, impl, why", AUTO)
def test_auto_picks_the_fastest_that_applies(cell, req, platform, impl, why):
  got, reason = select_impl(cell, req, platform)
  assert got == impl, reason
  assert why in reason


# (cell, request, platform, error phrase) for explicit impls that cannot run.
REFUSED = [
    (CHO, Request(impl="fused"), CPU, "needs a PointwiseCell (SimpleRNN, LSTM, GRU), not GRUCho"),
    (LSTM, Request(impl="fused", remat_chunk=2), CPU, "does not combine with remat"),
    (LSTM, Request(impl="native", lengths=True), CPU, "no lengths or hidden_probes"),
    (RNN, Request(impl="native"), CPU, "only, not SimpleRNN"),
    (LSTM, Request(impl="native"), NO_BUILD, "building the native recurrence kernels failed"),
    (LSTM, Request(impl="native"), GPU, "runs on the CPU, not gpu"),
    (GRU, Request(impl="cudnn"), GPU, "LSTM only"),
    (LSTM, Request(impl="cudnn", probes=True), GPU, "no hidden_probes"),
    (LSTM, Request(impl="cudnn", remat_chunk=1), GPU, "no remat"),
    (LSTM, Request(impl="cudnn", float32="compute dtype is bfloat16"), GPU,
     "float32 only (compute dtype is bfloat16"),
    (LSTM, Request(impl="cudnn"), NO_CUDNN, "cuDNN runs on an NVIDIA GPU, not cpu"),
    (LSTM, Request(impl="parallel"), CPU, "needs a LinearRecurrentCell"),
    (MIN, Request(impl="parallel", remat_chunk=3), CPU, "does not combine with remat"),
    (MIN, Request(impl="parallel_log", resets=True), CPU, "resets do not combine"),
    (rz.LRU(8), Request(impl="parallel_log"), CPU, "needs log_coefficients"),
]


@pytest.mark.parametrize("cell, req, platform, why", REFUSED)
def test_an_explicit_impl_that_cannot_run_says_why(cell, req, platform, why):
  with pytest.raises(rz.UserError, match=f"^impl='{req.impl}' cannot run here: ") as e:
    select_impl(cell, req, platform)
  assert why in str(e.value)


@pytest.mark.parametrize("cell, req, platform", [
    (LSTM, Request(impl="native"), CPU), (LSTM, Request(impl="native"), AVX2),
    (LSTM, Request(impl="cudnn"), GPU),
    (RNN, Request(impl="fused", lengths=True, probes=True, reverse=True), CPU),
    (CHO, Request(impl="scan", remat_chunk=4), CPU),
    (MIN, Request(impl="parallel_log", lengths=True), CPU),
])
def test_an_explicit_impl_that_can_run_is_taken(cell, req, platform):
  assert select_impl(cell, req, platform) == (req.impl, f"impl={req.impl!r} (asked for)")


def test_bad_impl_and_bad_cell():
  with pytest.raises(rz.UserError, match=r"^impl must be one of \['auto', 'scan', "
                     r"'fused', 'native', 'cudnn', 'parallel', 'parallel_log'\], got 'gpu'$"):
    select_impl(LSTM, Request(impl="gpu"), CPU)
  with pytest.raises(rz.UserError, match="^cell must be an rnn_zoo cell"):
    select_impl("lstm", Request(), CPU)


@pytest.mark.parametrize("flags, impl, excluded", [
    ({"native": True}, "native", set()),
    ({"native": False}, "auto", {"native"}),
    ({"fused": True}, "fused", set()),
    ({"fused": False}, "auto", {"fused", "native"}),
    ({"cudnn": True}, "cudnn", set()),
    ({"cudnn": False}, "auto", {"cudnn"}),
    ({"parallel": True}, "parallel", set()),
    ({"parallel": "log"}, "parallel_log", set()),
    ({"parallel": False}, "auto", {"parallel"}),
    ({"native": False, "parallel": False}, "auto", {"native", "parallel"}),
    ({"native": np.True_}, "native", set()),
    ({"fused": np.False_}, "auto", {"fused", "native"}),
])
def test_deprecated_flags_map_onto_impl_with_a_warning(flags, impl, excluded):
  with pytest.warns(DeprecationWarning, match="is deprecated and will be removed in the next "
                    "release: pass impl="):
    assert from_legacy_flags("auto", **flags) == (impl, frozenset(excluded))


def test_no_flags_no_warning_and_contradictions_refused():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert from_legacy_flags("scan") == ("scan", frozenset())
  with pytest.raises(rz.UserError, match=r"^parallel must be None, True, False or 'log', got 1 "):
    from_legacy_flags("auto", parallel=1)
  for flags, impl in [({"native": True, "fused": False}, "auto"),
                      ({"native": True, "cudnn": True}, "auto"),
                      ({"native": True}, "scan")]:
    with pytest.raises(rz.UserError, match="contradict each other or impl="):
      from_legacy_flags(impl, **flags)


def _setup(cell, T=5):
  p = cell.init(jax.random.key(0), 3)
  xs = jax.random.normal(jax.random.key(1), (2, T, 3))
  return p, xs


def test_explain_impl_matches_what_unroll_runs():
  """explain_impl's answer is the implementation whose primitives the
  traced program holds."""
  p, xs = _setup(LSTM)
  hlo = lambda **kw: jax.jit(lambda p, x: rz.unroll(LSTM, p, x, **kw)[0]).lower(p, xs).as_text()
  impl, why = rz.explain_impl(LSTM, p, xs)
  if native.untuned_cpu() is None:  # an AVX-512 CPU
    assert impl == "native" and "rnn_zoo_lstm_fused_forward_infer" in hlo()
  else:
    assert impl == "fused" and why.startswith("the native kernels are tuned for AVX-512")
    assert "rnn_zoo_lstm" not in hlo()
  assert "rnn_zoo_lstm_fused_forward_infer" in hlo(impl="native")
  lengths = jnp.array([5, 2])
  assert rz.explain_impl(LSTM, p, xs, lengths=lengths).impl == "fused"
  assert "rnn_zoo_lstm" not in hlo(lengths=lengths)
  choice = rz.explain_impl(LSTM, p, xs, remat=2)
  assert str(choice) == "scan: the fused backward pass does not combine with remat"
  mp, _ = _setup(MIN)
  jaxpr = str(jax.make_jaxpr(lambda p, x: rz.unroll(MIN, p, x)[0])(mp, xs))
  assert rz.explain_impl(MIN, mp, xs).impl == "parallel" and "scan[" not in jaxpr
  # float64 params: the native kernels are float32 only.
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: a.astype(jnp.float64), p)
    impl, why = rz.explain_impl(LSTM, p64, xs.astype(jnp.float64))
  assert impl == "fused" and "float32 only (w_ih is float64)" in why


def test_explain_impl_validates_like_unroll():
  p, xs = _setup(LSTM)
  with pytest.raises(rz.UserError, match="lengths must lie in"):
    rz.explain_impl(LSTM, p, xs, lengths=jnp.array([9, 1]))
  with pytest.raises(rz.UserError, match="impl='parallel' cannot run here"):
    rz.explain_impl(LSTM, p, xs, impl="parallel")


@pytest.mark.parametrize("flags, impl", [
    ({"native": False}, "fused"), ({"fused": False}, "scan"), ({"native": True}, "native"),
])
def test_deprecated_flags_still_run_through_unroll(flags, impl):
  p, xs = _setup(LSTM)
  with pytest.warns(DeprecationWarning) as record:
    old, _ = rz.unroll(LSTM, p, xs, **flags)
  # The warning points at the caller's line, not into the library.
  assert record[0].filename == __file__
  new, _ = rz.unroll(LSTM, p, xs, impl=impl)
  np.testing.assert_array_equal(old, new)
  with pytest.warns(DeprecationWarning):
    assert rz.explain_impl(LSTM, p, xs, **flags).impl == impl
  layer = rz.nn.RNN(LSTM, **flags)
  with pytest.warns(DeprecationWarning):
    variables = layer.init(jax.random.key(2), xs)
    got = layer.apply(variables, xs)
  want = rz.nn.RNN(LSTM, impl=impl).apply(variables, xs)
  np.testing.assert_array_equal(got, want)


def test_the_runner_logs_its_choice(caplog):
  p, xs = _setup(GRU)
  with caplog.at_level("DEBUG", logger="rnn_zoo.runner"):
    rz.unroll(GRU, p, xs, lengths=jnp.array([5, 3]))
  assert any("unroll(GRU): fused: the native kernel takes no lengths" in r.getMessage()
             for r in caplog.records)


@pytest.mark.parametrize("impl", ["auto", "fused", "scan"])
def test_params_are_checked_once_per_call(monkeypatch, impl):
  calls = []
  original = rz.LSTM.check_params
  monkeypatch.setattr(rz.LSTM, "check_params",
                      lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
  p, xs = _setup(LSTM)
  rz.unroll(LSTM, p, xs, impl=impl)
  assert len(calls) == 1
  with pytest.raises(rz.UserError, match=r"params\['w_hh'\] of LSTM must have shape"):
    rz.unroll(LSTM, dict(p, w_hh=p["w_hh"][:3]), xs, impl=impl)
