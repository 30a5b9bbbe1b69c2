"""The grid of runs: one compiled program for many runs gives what the same
runs give one at a time through train_and_evaluate."""

import dataclasses
import json
import jax
import numpy as np
import pytest

import helpers
from experiments.long_range import config as lr_config
from experiments.long_range import workload
from rnn_zoo import gradflow
from rnn_zoo.errors import UserError
from rnn_zoo.training import grid
from rnn_zoo.training import loop

STEPS, EVAL_EVERY = 24, 8


def configs(cell="lstm"):
  """Seeds, learning rates, clipping on/off and init variants of one shape."""
  out = []
  for seed, lr, clip, extra in [(0, 3e-3, 1.0, {}), (1, 1e-2, 0.0, {}),
                                (2, 3e-3, 0.5, {"forget_bias": 0.0}),
                                (0, 3e-3, 1.0, {"chrono": True})]:
    c = lr_config.get_config("smoke")
    c.update(dict(cell=cell, seed=seed, learning_rate=lr, clip_norm=clip,
                  num_steps=STEPS, eval_every=EVAL_EVERY, log_every=1,
                  checkpoint_every=STEPS, **extra))
    out.append(c)
  return out


def read_jsonl(path):
  return [json.loads(l) for l in open(path) if l.strip()]


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
  root = tmp_path_factory.mktemp("single")
  out = []
  for i, c in enumerate(configs()):
    wd = root / f"run_{i}"
    final = loop.train_and_evaluate(c, str(wd), workload.long_range(c))
    trace = read_jsonl(wd / "trace.jsonl")
    evals = [m for m in read_jsonl(wd / "metrics.jsonl") if m["split"] == "eval"]
    out.append({"final": final, "params": helpers.final_params(wd)[1],
                "losses": [l for t in trace for l in t["loss"]],
                "grad_norms": [g for t in trace for g in t["grad_norm"]],
                "evals": [(m["step"], m["loss"]) for m in evals]})
  return out


def assert_close(a, b, rtol=2e-4, atol=2e-5):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("steps_per_call", [EVAL_EVERY, 3])
def test_group_matches_runs_one_at_a_time(one_at_a_time, steps_per_call):
  results = grid.train_group(configs(), workload.long_range,
                             steps_per_call=steps_per_call, keep_params=True)
  assert len(results) == len(one_at_a_time)
  for got, want in zip(results, one_at_a_time):
    np.testing.assert_allclose([l for _, l, _ in got["train"]], want["losses"], rtol=2e-4)
    np.testing.assert_allclose([g for _, _, g in got["train"]], want["grad_norms"], rtol=2e-3)
    assert [s for s, _ in got["eval"]] == [s for s, _ in want["evals"]] == [8, 16, 24]
    np.testing.assert_allclose([m["loss"] for _, m in got["eval"]],
                               [l for _, l in want["evals"]], rtol=2e-4)
    np.testing.assert_allclose(got["final"]["loss"], want["final"]["loss"], rtol=2e-4)
    assert_close(got["params"], want["params"])
  # The runs differ from each other (seeds, lr, init): not one run copied.
  finals = [r["final"]["loss"] for r in results]
  assert len(set(np.round(finals, 6))) == len(finals)


@pytest.mark.slow
def test_diagnostics_during_training():
  cs = configs()[:2]
  results = grid.train_group(cs, workload.long_range, diagnose_every=2 * EVAL_EVERY)
  for c, r in zip(cs, results):
    steps = [s for s, _, _ in r["diagnostics"]]
    assert steps == [0, 16]  # at the start of the chunks from steps 0 and 16
    for _, norms, horizon in r["diagnostics"]:
      assert len(norms) == 1 and len(norms[0]) == c.seq_len  # one layer, [T]
      assert 0 <= horizon < c.seq_len
      assert all(np.isfinite(norms[0])) and norms[0][-1] > 0
    # At step 0: the same numbers as gradflow on the run's initial params.
    w = workload.long_range(c)
    k_init, _, _, k_eval = jax.random.split(jax.random.key(c.seed), 4)
    params = w.init_params(k_init)
    batch = w.eval_batch(jax.random.fold_in(k_eval, 0), 0)
    want = gradflow.hidden_grad_norms(
        lambda pr: w.loss_fn(params, batch, jax.random.key(0), False, hidden_probes=pr)[0],
        tuple(jax.numpy.zeros(s) for s in w.diagnostics.hidden_shapes(batch)))
    np.testing.assert_allclose(r["diagnostics"][0][1][0], want[0], rtol=1e-4)
    assert r["diagnostics"][0][2] == int(gradflow.steps_in_the_past(want[0], 1e-2))


@pytest.mark.slow
def test_on_eval_stops_the_group_early(one_at_a_time):
  """on_eval returning True stops every run there: what was trained up to
  then is what the runs made one at a time had at that step."""
  seen = []
  def stop_at_16(step, results):
    seen.append((step, len(results[0]["eval"])))
    return step >= 16
  results = grid.train_group(configs(), workload.long_range, steps_per_call=5,
                             on_eval=stop_at_16)
  assert seen == [(8, 1), (16, 2)]
  for got, want in zip(results, one_at_a_time):
    assert got["steps"] == 16 and len(got["train"]) == 16
    assert [s for s, _ in got["eval"]] == [8, 16]
    np.testing.assert_allclose(got["final"]["loss"], want["evals"][1][1], rtol=2e-4)
  full = grid.train_group(configs()[:1], workload.long_range, on_eval=lambda s, r: None)
  assert full[0]["steps"] == STEPS


def test_groups_and_errors():
  cs = configs() + configs(cell="gru")
  init_only = workload.long_range(cs[0]).init_only_fields
  assert set(init_only) == {"forget_bias", "chrono", "recurrent_init", "exprnn_init"}
  assert grid.group_configs(cs, init_only) == [[0, 1, 2, 3], [4, 5, 6, 7]]
  # Without the workload's init-only fields, a changed forget bias or chrono
  # init is a different program.
  assert grid.group_configs(cs) == [[0, 1], [2], [3], [4, 5], [6], [7]]
  with pytest.raises(UserError, match=r"also differ in \['cell'\]"):
    grid.train_group(cs, workload.long_range)
  c = configs()[0]
  c.schedule = "cosine"
  with pytest.raises(UserError, match="schedule='cosine'"):
    grid.train_group([c], workload.long_range)
  with pytest.raises(UserError, match="diagnose_every must be a multiple of config.eval_every=8, got 5"):
    grid.train_group(configs()[:1], workload.long_range, diagnose_every=5)
  with pytest.raises(UserError, match="steps_per_call must be"):
    grid.train_group(configs()[:1], workload.long_range, steps_per_call=0)
  stateful = lambda c: dataclasses.replace(workload.long_range(c), init_carry=lambda b: None)
  with pytest.raises(UserError, match="use train_and_evaluate for this one"):
    grid.train_group(configs()[:1], stateful)


@pytest.mark.slow
def test_validation_is_its_own_data_and_leaves_training_alone():
  """validate=True adds valid_<metric> from the workload's validation data
  at every evaluation; the training and the held-out metrics are the run
  without it, bit for bit. Pixel tasks hold a share of the training images
  out for it (config.valid_fraction)."""
  cs = configs()[:2]
  plain = grid.train_group(cs, workload.long_range)
  valid = grid.train_group(cs, workload.long_range, validate=True)
  for p, v in zip(plain, valid):
    assert p["train"] == v["train"]
    for (s1, m1), (s2, m2) in zip(p["eval"], v["eval"]):
      assert s1 == s2 and m1 == {k: x for k, x in m2.items() if not k.startswith("valid_")}
      assert set(m2) == set(m1) | {f"valid_{k}" for k in m1}
      assert m2["valid_loss"] != m2["loss"]  # other draws of the generator
  digits = lr_config.get_config("digits")
  digits.update(dict(num_steps=4, eval_every=4, log_every=1, eval_batches=1,
                     checkpoint_every=4, hidden_size=8))
  assert workload.long_range(digits).valid_batch is None
  with pytest.raises(UserError, match="validate=True needs a workload with valid_batch"):
    grid.train_group([digits], workload.long_range, validate=True)
  digits.valid_fraction = 0.1
  w = workload.long_range(digits)
  batch = w.valid_batch(jax.random.key(0), 0)
  assert batch["inputs"].shape == (digits.batch_size, 64, 1)
  (r,) = grid.train_group([digits], workload.long_range, validate=True)
  assert {"valid_loss", "valid_accuracy", "loss", "accuracy"} <= set(r["final"])
  bad = lr_config.get_config("smoke")
  bad.valid_fraction = 0.1
  with pytest.raises(UserError, match="config.valid_fraction is read by the pixel tasks only"):
    workload.long_range(bad)
  bad.valid_fraction = 1.0
  with pytest.raises(UserError, match=r"config.valid_fraction must be in \[0, 1\), got 1.0"):
    workload.long_range(bad)


DEVICES_SCRIPT = """
import json, sys
import jax
if len(sys.argv) > 1:  # coordinator address, process id: one of two processes
  from rnn_zoo.training import sharding
  sharding.initialize_distributed(sys.argv[1], 2, int(sys.argv[2]))
from experiments.long_range import config as lr_config, workload
from rnn_zoo.training import grid
cs = []
for seed in range(3):
  c = lr_config.get_config("smoke")
  c.update(dict(seed=seed, num_steps=10, eval_every=5, learning_rate=1e-2))
  cs.append(c)
res = grid.train_group(cs, workload.long_range, keep_params=True)
print(json.dumps({"devices": jax.device_count(), "processes": jax.process_count(),
                  "loss": [r["final"]["loss"] for r in res],
                  "w_hh": [r["params"]["params"]["rnn"]["stack"]["layer_0"]["w_hh"].tolist()
                           for r in res]}))
"""


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_devices():
  """3 runs over 1 device and over 4 (padded to 4 runs, one per device)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  out = {}
  for n in (1, 4):
    proc = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT], cwd=helpers.ROOT,
                          env=helpers.env(devices=n), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[n]["devices"] == n
  np.testing.assert_allclose(out[4]["loss"], out[1]["loss"], rtol=1e-5)
  np.testing.assert_allclose(out[4]["w_hh"], out[1]["w_hh"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_processes(tmp_path):
  """The same 3 runs in one process (one device) and in two processes with
  one device each (jax.distributed on 127.0.0.1): the runs axis is sharded
  across the processes and every process gathers every run's results."""
  import socket  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  one = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT], cwd=helpers.ROOT,
                       env=helpers.env(devices=1), capture_output=True, text=True,
                       timeout=600)
  assert one.returncode == 0, one.stderr[-3000:]
  one = json.loads(one.stdout.strip().splitlines()[-1])
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  # Output to files, not pipes: a pipe nobody reads while the other process
  # is waited on fills up (the params are ~60 kB of JSON), and the writer then
  # never reaches jax.distributed's shutdown barrier.
  logs = [(open(tmp_path / f"out{i}", "w"), open(tmp_path / f"err{i}", "w")) for i in range(2)]
  procs = [subprocess.Popen([sys.executable, "-c", DEVICES_SCRIPT, f"127.0.0.1:{port}", str(i)],
                            cwd=helpers.ROOT, env=helpers.env(devices=1),
                            stdout=logs[i][0], stderr=logs[i][1], text=True)
           for i in range(2)]
  try:
    for p in procs:
      p.wait(timeout=600)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    for f in sum(logs, ()):
      f.close()
  outs = [((tmp_path / f"out{i}").read_text(), (tmp_path / f"err{i}").read_text())
          for i in range(2)]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  for out, _ in outs:
    got = json.loads(out.strip().splitlines()[-1])
    assert (got["devices"], got["processes"]) == (2, 2)
    np.testing.assert_allclose(got["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(got["w_hh"], one["w_hh"], rtol=1e-5, atol=1e-6)
