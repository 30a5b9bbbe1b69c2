"""The VQA binary end to end: train, answer, score by kind and subtype,
write predictions, attention maps and the report; every fusion through the
training loop's jitted step; CLEVR-format data; presets and config fields;
one-line errors."""

import json

import pytest

import helpers
from experiments import common
from experiments.vqa import config as vqa_config

pytestmark = pytest.mark.slow


def run(workdir, data_dir, *overrides, check=True):
  return helpers.run_smoke("vqa", workdir, data_dir, *overrides, check=check)


def test_smoke_trains_answers_scores_and_reports(tmp_path, data_dir):
  run(tmp_path, data_dir)                                  # attention, 2 hops
  r = json.loads((tmp_path / "results.json").read_text())
  assert r["fusion"] == "attention" and r["step"] == 6 and r["split"] == "test"
  assert r["questions"] == 160 and set(r["kinds"]) == {"non-relational", "relational"}
  assert sum(v["questions"] for v in r["subtypes"].values()) == 160
  assert sum(map(sum, r["confusion"])) == 160
  right = sum(r["confusion"][i][i] for i in range(len(r["confusion"])))
  assert right / 160 == pytest.approx(r["accuracy"])
  preds = json.loads((tmp_path / "predictions_test.json").read_text())
  assert len(preds) == 160
  from rnn_zoo.data import sort_of_clevr as soc  # pylint: disable=g-import-not-at-top
  truth = {}
  for i in range(8):                                       # rescoring from the file
    sc = soc.make_scene("test", i)
    truth.update({str(20 * i + k): soc.ANSWERS[a] for k, a in enumerate(sc.answers)})
  assert sum(preds[q] == a for q, a in truth.items()) / 160 == pytest.approx(r["accuracy"])
  assert (tmp_path / r["figure"]).read_bytes()[:4] == b"\x89PNG"
  assert "| relational | 80 |" in (tmp_path / "report.md").read_text()
  for kind in ("non-relational", "relational"):           # where attention looked
    assert len(r["pointing"][kind]) == 2
    for hop in r["pointing"][kind]:
      assert 0.0 <= hop["pixels"] <= hop["cells"] <= 1.0 and 0.0 <= hop["lands"] <= 1.0
  assert "| non-relational | 2 |" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("fusion,extra", [("concat", {"bidirectional": True}),
                                          ("product", {"by_image": False, "batch_size": 16}),
                                          ("relation", {"g_size": 8, "g_pool": "mean",
                                                        "time_budget_minutes": 600.0}),
                                          ("attention", {"hops": 1, "cell": "lstm"})])
def test_every_fusion_trains_through_the_loop(tmp_path, data_dir, fusion, extra):
  from rnn_zoo import training  # pylint: disable=g-import-not-at-top
  from experiments.vqa import evaluate, workload  # pylint: disable=g-import-not-at-top
  c = vqa_config.get_config("smoke")
  c.update({"data_dir": str(data_dir), "fusion": fusion, "num_steps": 2, **extra})
  task = workload.vqa(c)
  training.train_and_evaluate(c, str(tmp_path), task.workload)
  r = evaluate.evaluate_run(c, str(tmp_path), task)
  assert r["fusion"] == fusion and r["questions"] == 160
  assert ("figure" in r) == (fusion == "attention")
  if "time_budget_minutes" in extra:     # the relation preset's budget: planned, capped
    plan = json.loads((tmp_path / "budget.json").read_text())
    assert plan["num_steps"] == plan["cap"] == 2 and r["step"] == 2


def test_resume_is_bit_identical_with_the_data_stream(tmp_path, data_dir):
  """Batches are grain items indexed by the step: a run stopped at step 3
  and resumed ends with the params of an uninterrupted 6-step run."""
  from rnn_zoo import training  # pylint: disable=g-import-not-at-top
  from experiments.vqa import workload  # pylint: disable=g-import-not-at-top
  c = vqa_config.get_config("smoke")
  c.update({"data_dir": str(data_dir), "fusion": "attention", "num_steps": 6})
  training.train_and_evaluate(c, str(tmp_path / "whole"), workload.vqa(c).workload)
  c.num_steps = 3
  training.train_and_evaluate(c, str(tmp_path / "resumed"), workload.vqa(c).workload)
  c.num_steps = 6
  training.train_and_evaluate(c, str(tmp_path / "resumed"), workload.vqa(c).workload)
  a, b = helpers.final_params(tmp_path / "whole"), helpers.final_params(tmp_path / "resumed")
  assert a[0] == b[0] == 6
  helpers.assert_trees_equal(a[1], b[1])


def test_clevr_format_data_trains(tmp_path, data_dir):
  from test_vqa_data import write_clevr  # pylint: disable=g-import-not-at-top
  f = write_clevr(tmp_path / "clevr")
  run(tmp_path / "w", data_dir, "--config.dataset=clevr", f"--config.clevr_train={f['train'][0]}",
      f"--config.clevr_val={f['train'][0]}", f"--config.clevr_train_images={f['train'][1]}",
      f"--config.clevr_val_images={f['train'][1]}", "--config.image_size=24",
      "--config.batch_size=2", "--config.num_steps=2", "--config.eval_every=2",
      "--config.checkpoint_every=2")
  r = json.loads((tmp_path / "w" / "results.json").read_text())
  assert r["split"] == "validation" and r["questions"] == 4
  assert set(r["subtypes"]) <= {"yes/no", "number", "attribute"}


def test_bad_config_is_one_line(tmp_path, data_dir):
  proc = run(tmp_path, data_dir, "--config.fusion=sum", check=False)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: config.fusion must be one of ['concat', 'product', 'attention', "
      "'relation'], got 'sum'")
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides,message", [
    ({"dataset": "clevr"}, "config.clevr_train is required with config.dataset='clevr'"),
    ({"image_size": 64}, "config.image_size must be 75 for Sort-of-CLEVR, got 64"),
    ({"hops": 3}, r"config.hops must be one of \[1, 2\], got 3"),
    ({"num_layers": 2}, "config.num_layers must be 1 for the question reader, got 2"),
    ({"batch_size": 9}, "the validation split has 8 images, fewer than config.batch_size=9"),
    ({"by_image": False, "batch_size": 161},
     "the validation split has 160 questions, fewer than config.batch_size=161"),
])
def test_bad_config_values_name_the_field(data_dir, overrides, message):
  from experiments.vqa import workload  # pylint: disable=g-import-not-at-top
  c = vqa_config.get_config("smoke")
  c.update({"data_dir": str(data_dir), **overrides})
  with pytest.raises(ValueError, match=message):
    workload.vqa(c)


@pytest.mark.parametrize("preset", vqa_config.PRESETS)
def test_presets_build_and_every_field_is_commented(preset):
  c = vqa_config.get_config(preset)
  comments = common.field_comments(vqa_config)
  for key in c.keys():
    assert comments.get(key), f"config field {key} has no comment"
