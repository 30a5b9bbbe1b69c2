"""The captioning binary end to end: train, decode, score, write the COCO
files and the report; resume bit-identical; presets and config fields;
one-line errors."""

import json
import subprocess
import sys

import pytest

import helpers
from experiments import common
from experiments.captioning import config as cap_config
from experiments.captioning import evaluate

pytestmark = pytest.mark.slow


def run(workdir, data_dir, *overrides, check=True):
  return helpers.run_smoke("captioning", workdir, data_dir, *overrides, check=check)


# Hard attention decoding with the expected context (the sample binary's
# test covers sampled locations).
# (reward to go: its per-step baseline rides in the carry as [B, T]; the
# paper's caption reward is the smoke test's hard run)
RESUMABLE = ["--config.mode=hard", "--config.async_checkpoint=false",
             "--config.hard_decoding=expectation", "--config.reinforce_reward=to_go"]


@pytest.fixture(scope="module")
def hard_run(tmp_path_factory, data_dir):
  """One uninterrupted hard-attention smoke run (shared by two tests)."""
  workdir = tmp_path_factory.mktemp("hard")
  run(workdir, data_dir, *RESUMABLE)
  return workdir


def check_outputs(workdir, mode):
  results = json.loads((workdir / "results.json").read_text())
  assert results["mode"] == mode and results["step"] == 6
  assert set(results["splits"]) == {"validation", "test", "compositional"}
  for split, r in results["splits"].items():
    assert r["images"] == 8
    for k in ("BLEU-1", "BLEU-4", "CIDEr-D"):
      assert 0.0 <= r[k] <= 10.0
    assert set(r["truth"]) >= {"all"}
    captions = json.loads((workdir / f"captions_{split}.json").read_text())
    assert len(captions) == 8 and set(captions[0]) == {"image_id", "caption"}
    refs = json.loads((workdir / f"references_{split}.json").read_text())
    assert len(refs["annotations"]) == 8 * 5
    # Anyone can rescore the files with pycocoevalcap and get our numbers.
    gts = {}
    for a in refs["annotations"]:
      gts.setdefault(a["image_id"], []).append(a["caption"])
    again = evaluate.coco_scores(gts, {c["image_id"]: c["caption"] for c in captions})
    assert again == {k: r[k] for k in again}
    if mode == "plain":
      assert "pointing" not in r and "figure" not in r
    else:
      p = r["pointing"]
      assert p["matched"] <= p["object_words"]
      if p["matched"]:
        assert 0.0 <= p["mean_mass"] <= 1.0 and 0.0 <= p["over_half_cells"] <= 1.0
      assert r["figure"] == f"attention_{split}.png"
      assert (workdir / r["figure"]).read_bytes()[:4] == b"\x89PNG"
  report = (workdir / "report.md").read_text()
  assert "| compositional | 8 |" in report
  assert ("Attention pointing" in report) == (mode != "plain")


@pytest.mark.parametrize("mode", ["plain", "soft", "hard", "hard_to_go"])
def test_smoke_trains_decodes_scores_and_reports(tmp_path, data_dir, hard_run, mode):
  if mode == "hard_to_go":
    check_outputs(hard_run, "hard")
    return
  # (soft: attention after the cell's step, local features, a blank initial
  # state and the entropy penalty; hard: the paper's settings)
  extra = (["--config.attention_query=after", "--config.local_features=True",
            "--config.init_state=zeros", "--config.entropy_penalty=0.05"]
           if mode == "soft" else [])
  run(tmp_path, data_dir, f"--config.mode={mode}", *extra)
  check_outputs(tmp_path, mode)


def test_resume_is_bit_identical_with_the_data_stream(tmp_path, data_dir, hard_run):
  """Batches are grain items indexed by the step, so a run stopped at step 3
  and resumed reads exactly the batches an uninterrupted run reads (hard
  attention: its REINFORCE baseline rides in the train state's carry)."""
  run(tmp_path, data_dir, *RESUMABLE, "--config.num_steps=3",
      "--config.eval_splits=test")
  run(tmp_path, data_dir, *RESUMABLE)
  a, b = helpers.final_params(hard_run), helpers.final_params(tmp_path)
  assert a[0] == b[0] == 6
  helpers.assert_trees_equal(a[1], b[1])
  for split in ("test", "compositional"):
    assert (json.loads((hard_run / f"captions_{split}.json").read_text())
            == json.loads((tmp_path / f"captions_{split}.json").read_text()))


def sample(workdir, *flags):
  return subprocess.run(
      [sys.executable, "-m", "experiments.captioning.sample", f"--workdir={workdir}",
       *flags], cwd=helpers.ROOT, env=helpers.env(), capture_output=True, text=True,
      timeout=600)


def test_sample_binary_captions_image_files(tmp_path, hard_run, binary_module):
  """PNG and JPEG files of any size through the binary (beam; seeded
  sampling with sampled locations), captions JSON and the attention figure;
  in-process, on the same run: greedy = beam width 1, the same seed gives
  the same samples."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  sample_lib = binary_module("experiments.captioning.sample")
  from rnn_zoo.data import shapes  # pylint: disable=g-import-not-at-top
  files = []
  for i, ext in enumerate(("png", "jpg")):
    files.append(str(tmp_path / f"scene{i}.{ext}"))
    Image.fromarray(shapes.make_scene("test", i).image).save(files[-1])
  big = tmp_path / "big.png"   # another size: resized to the run's image_size
  Image.fromarray(shapes.make_scene("test", 2).image).resize((100, 100)).save(big)
  files.append(str(big))
  for name, flags in {"beam": ["--decoding=beam", "--beam_size=2"],
                      "sample": ["--decoding=sample", "--temperature=0.8", "--top_k=3",
                                 "--seed=5", "--hard_decoding=sample"]}.items():
    js, fig = tmp_path / f"{name}.json", tmp_path / f"{name}.png"
    proc = sample(hard_run, "--images=" + ",".join(files), *flags, f"--output={js}",
                  f"--figure={fig}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(js.read_text())
    assert [r["file_name"] for r in rows] == files
    for f in files:
      assert f"{f}: " in proc.stdout
    assert fig.read_bytes()[:4] == b"\x89PNG"       # hard attention: the maps
  model, params, vocab, config, _ = sample_lib.load(str(hard_run))
  images = [sample_lib.read_image(f, config.image_size) for f in files]
  out = {name: [vocab.decode(t) for t in sample_lib.caption_images(
      model, params, images, max_length=6, **kw)[0]]
         for name, kw in {"greedy": dict(decoding_mode="greedy"),
                          "width1": dict(decoding_mode="beam", beam_size=1),
                          "sample": dict(decoding_mode="sample", temperature=0.8, seed=5),
                          "again": dict(decoding_mode="sample", temperature=0.8,
                                        seed=5)}.items()}
  assert out["greedy"] == out["width1"] and out["sample"] == out["again"]
  results = json.loads((hard_run / "results.json").read_text())
  assert results["hard_decoding"] == "expectation"


@pytest.mark.parametrize("flags,message", [
    (["--images=/nonexistent.png"], "error: --images names '/nonexistent.png', which is not a file"),
    (["--images=README.md"], "error: --images: image file 'README.md' cannot be read as an image"),
    (["--images=README.md", "--output=/nonexistent_dir/x.json"],
     "error: --output names '/nonexistent_dir/x.json', whose folder '/nonexistent_dir' does not exist"),
    (["--images=README.md", "--figure=/"], "error: --figure names '/', which is a folder"),
])
def test_sample_binary_bad_input_is_one_line(hard_run, flags, message):
  proc = sample(hard_run, *flags)
  assert proc.returncode in (1, 2), proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


def test_sample_binary_needs_a_trained_run(tmp_path):
  proc = sample(tmp_path, "--images=x.png")
  assert proc.returncode == 2
  assert "holds no checkpoints (train first" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("overrides,message", [
    (["--config.dataset=coco"], "error: config.coco_train is required with config.dataset='coco'"),
    (["--config.mode=glance"], "error: config.mode must be one of ['plain', 'soft', 'hard'], got 'glance'"),
    (["--config.image_size=32"], "error: config.image_size must be 64 for the shapes data, got 32"),
    (["--config.eval_splits=train,nope"], "error: config.eval_splits names 'nope'"),
])
def test_bad_config_is_one_line(tmp_path, data_dir, overrides, message):
  proc = run(tmp_path, data_dir, *overrides, check=False)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(message)
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("preset", cap_config.PRESETS)
def test_presets_build_and_every_field_is_commented(preset):
  c = cap_config.get_config(preset)
  comments = common.field_comments(cap_config)
  for key in c.keys():
    assert comments.get(key), f"config field {key} has no comment"


def test_coco_format_data_trains(tmp_path, data_dir):
  """The same binary on COCO-format files (a fixture this test writes)."""
  from test_captions_data import write_coco_fixture  # pylint: disable=g-import-not-at-top
  path, images = write_coco_fixture(tmp_path / "coco")
  run(tmp_path / "w", data_dir, "--config.dataset=coco", f"--config.coco_train={path}",
      f"--config.coco_val={path}", f"--config.coco_images={images}",
      "--config.batch_size=2", "--config.num_steps=2", "--config.eval_every=2",
      "--config.checkpoint_every=2")
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  assert list(results["splits"]) == ["validation"]
  assert "truth" not in results["splits"]["validation"]


def test_every_config_key_is_read(tmp_path, data_dir):
  """A smoke run (training and the final evaluation, each mode) reads every
  field; the cell options are read when their cell is chosen."""
  import rnn_zoo as rz  # pylint: disable=g-import-not-at-top
  from rnn_zoo import training  # pylint: disable=g-import-not-at-top
  from experiments.captioning import evaluate, workload  # pylint: disable=g-import-not-at-top
  from test_config import RecordingConfig  # pylint: disable=g-import-not-at-top
  read = set()
  for mode in ("hard",):  # reads what plain and soft read, and its own fields
    c = RecordingConfig(cap_config.get_config("smoke"))
    c.update({"data_dir": str(data_dir), "mode": mode, "num_steps": 1,
              "eval_splits": "test"})
    c._read.clear()  # pylint: disable=protected-access
    task = workload.captioning(c)
    training.train_and_evaluate(c, str(tmp_path / mode), task.workload)
    evaluate.evaluate_run(c, str(tmp_path / mode), task)
    read |= c._read  # pylint: disable=protected-access
  for cell in rz.CELL_NAMES:
    c = RecordingConfig(cap_config.get_config("smoke"))
    c.update({"data_dir": str(data_dir), "cell": cell, "chrono": True})
    c._read.clear()  # pylint: disable=protected-access
    workload.make_model(c, 10)
    read |= c._read  # pylint: disable=protected-access
    for optimizer in training.OPTIMIZERS:
      for schedule in training.SCHEDULES:
        c.update({"optimizer": optimizer, "schedule": schedule})
        training.make_optimizer(c)
    read |= c._read  # pylint: disable=protected-access
  from test_captions_data import write_coco_fixture  # pylint: disable=g-import-not-at-top
  path, images = write_coco_fixture(tmp_path / "coco")
  coco = RecordingConfig(cap_config.get_config("smoke"))
  coco.update({"dataset": "coco", "coco_train": str(path), "coco_val": str(path),
               "coco_images": str(images)})
  coco._read.clear()  # pylint: disable=protected-access
  workload.load_sources(coco)
  read |= coco._read  # pylint: disable=protected-access
  unread = set(cap_config.get_config("smoke").keys()) - read
  assert not unread, sorted(unread)
