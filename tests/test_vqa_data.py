"""VQA data: the Sort-of-CLEVR tfds builder, CLEVR-format question files,
grain batches that are a function of the step."""

import json
import pathlib
import threading

import numpy as np
import pytest

from rnn_zoo.data import sort_of_clevr as soc
from rnn_zoo.data import vqa
from rnn_zoo.metrics import attention_maps


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return vqa.sort_of_clevr(str(tmp_path_factory.mktemp("tfds")), "tiny")


def test_builder_holds_the_generated_questions(tiny):
  assert {k: len(v) for k, v in tiny.items()} == {
      k: 20 * n for k, n in vqa.SIZES["tiny"].items()}
  for split in ("train", "test"):
    for j in (0, 19, 20, 77):
      item = tiny[split][j]
      sc = soc.make_scene(split, int(item["image_index"]))
      np.testing.assert_array_equal(item["image"], sc.image)
      np.testing.assert_array_equal(item["question"], sc.questions[j % 20])
      assert item["answer"] == sc.answers[j % 20] and item["subtype"] == sc.subtype[j % 20]
      np.testing.assert_array_equal(item["bits"], sc.bits[j % 20])
      assert item["question_index"] == 20 * item["image_index"] + j % 20


def test_runs_started_together_prepare_the_data_once(tmp_path):
  """Two preparations at once into a fresh data dir both succeed (before the
  lock, the second crashed renaming its folder onto the first's)."""
  vqa._builder_class()  # pylint: disable=protected-access  (defined once, then raced)
  start, results, errors = threading.Barrier(2), [], []

  def prepare():
    start.wait()
    try:
      results.append({k: len(v) for k, v in vqa.sort_of_clevr(str(tmp_path), "tiny").items()})
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=prepare) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors
  assert results == [{k: 20 * n for k, n in vqa.SIZES["tiny"].items()}] * 2


def test_batches_are_a_function_of_the_step(tiny):
  a = vqa.batches(tiny["train"], batch_size=16, seed=3)
  b = vqa.batches(tiny["train"], batch_size=16, seed=3)
  for step in (0, 7, 60):                          # 60 is past the first epoch (50 batches)
    for k in a[step]:
      np.testing.assert_array_equal(a[step][k], b[step][k])
  assert a[0]["image"].dtype == np.float32 and a[0]["image"].max() <= 1.0
  epoch = np.concatenate([a[s]["question_index"] for s in range(50)])
  assert sorted(epoch) == list(range(800))        # one epoch sees every question once
  assert sorted(tiny["train"][j]["image_index"] for j in range(0, 800, 20)) == list(range(40))
  ev = vqa.batches(tiny["test"], batch_size=64, seed=0, train=False)
  assert [len(ev[i]["answer"]) for i in range(len(ev))] == [64, 64, 32]


def test_scene_batches_hold_whole_scenes(tiny):
  """``by_image``: batch s is ``batch_size`` images with all 20 questions
  each, a function of the step; an epoch sees every image once."""
  a = vqa.batches(tiny["train"], batch_size=4, seed=3, by_image=True)
  b = vqa.batches(tiny["train"], batch_size=4, seed=3, by_image=True)
  for step in (0, 12):                            # 12 is past the first epoch (10 batches)
    for k in a[step]:
      np.testing.assert_array_equal(a[step][k], b[step][k])
  x = a[0]
  assert x["image"].shape == (4, 75, 75, 3) and x["image"].dtype == np.float32
  assert x["question"].shape == (4, 20, soc.MAX_QUESTION_LENGTH)
  for k in ("answer", "subtype", "colour", "question_index"):
    assert x[k].shape == (4, 20), k
  first = x["question_index"][0, 0] // 20
  sc = soc.make_scene("train", int(first))
  np.testing.assert_array_equal(x["question"][0], sc.questions)
  np.testing.assert_array_equal(x["answer"][0], sc.answers)
  np.testing.assert_array_equal(x["colour"][0], sc.colour)
  np.testing.assert_array_equal(x["question_index"][0], 20 * first + np.arange(20))
  epoch = np.concatenate([a[s]["question_index"][:, 0] // 20 for s in range(10)])
  assert sorted(epoch) == list(range(40))
  ev = vqa.batches(tiny["test"], batch_size=3, seed=0, train=False, by_image=True)
  assert [len(ev[i]["answer"]) for i in range(len(ev))] == [3, 3, 2]
  with pytest.raises(ValueError, match="by_image batches need a source of whole scenes"):
    vqa.batches([{"image": 0}], batch_size=1, seed=0, by_image=True)


def test_object_masks_and_attention_mass():
  """The named object's mask is exactly its drawn pixels; ``mass_on_mask``
  on known maps."""
  sc = soc.make_scene("test", 3)
  masks = [soc.object_mask(sc.image, c) for c in range(6)]
  assert not np.any(np.sum(masks, axis=0) > 1)
  np.testing.assert_array_equal(np.sum(masks, axis=0) > 0, sc.image.any(-1))
  for c, m in enumerate(masks):
    ys, xs = np.nonzero(m)
    np.testing.assert_allclose([xs.mean(), ys.mean()], sc.centre[c], atol=0.6)
    np.testing.assert_array_equal(m, soc.object_mask(sc.image, soc.COLOURS[c]))
  with pytest.raises(ValueError, match="colour must be one of"):
    soc.object_mask(sc.image, 6)
  with pytest.raises(ValueError, match=r"image must be \[S, S, 3\] uint8, got float32"):
    soc.object_mask(sc.image.astype(np.float32), 0)
  block = np.zeros((75, 75), bool)
  block[15:30, 30:45] = True                     # exactly location (1, 2) of a 5x5 grid
  one_hot = np.zeros(25)
  one_hot[7] = 1.0
  assert attention_maps.mass_on_mask(one_hot, block) == pytest.approx((1.0, 1.0))
  assert attention_maps.mass_on_mask(np.full(25, 0.04), block) == pytest.approx((0.04, 0.04))
  straddle = np.zeros((75, 75), bool)
  straddle[15:30, 40:50] = True                  # 5 columns in location 7, 5 in 8
  half = np.zeros(25)
  half[7] = half[8] = 0.5
  assert attention_maps.mass_on_mask(half, straddle) == pytest.approx((75 / 225, 1.0))
  with pytest.raises(ValueError, match="alpha must be \\[L\\] over a square grid"):
    attention_maps.mass_on_mask(np.ones(24) / 24, block)


def write_clevr(root, *, drop_image=False, bad_answer=False):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root.mkdir(parents=True, exist_ok=True)
  out = {}
  for split, answers in (("train", ["yes", "2", "cube", "no"]), ("val", ["no", "cube"])):
    d = root / "images" / split
    d.mkdir(parents=True, exist_ok=True)
    qs = []
    for i, a in enumerate(answers):
      name = f"CLEVR_{split}_{i // 2:06d}.png"
      if not (drop_image and split == "val"):
        Image.fromarray(np.full((32, 48, 3), 40 * i, np.uint8)).save(d / name)
      noun = "thing" if split == "train" else "block"          # unseen in training
      qs.append({"question": f"Is there a big rubber {noun}{'s' * i}?", "image_filename": name,
                 "image_index": i // 2, "question_index": i,
                 "answer": "sphere" if bad_answer and split == "val" else a})
    path = root / f"CLEVR_{split}_questions.json"
    path.write_text(json.dumps({"info": {}, "questions": qs}))
    out[split] = (str(path), str(d))
  return out


def test_clevr_format_round_trip(tmp_path):
  f = write_clevr(tmp_path)
  sources, words, answers = vqa.load_clevr(f["train"][0], f["val"][0],
                                           (f["train"][1], f["val"][1]), image_size=24,
                                           max_length=10)
  assert answers.words == ["2", "cube", "no", "yes"]
  assert words.words[:2] == ["<NULL>", "<UNK>"] and "?" in words.words
  item = sources["validation"][1]
  assert item["image"].shape == (24, 24, 3) and item["answer"] == answers.index["cube"]
  assert item["subtype"] == 2 and sources["train"][1]["subtype"] == 1      # attribute, number
  text = [words.words[i] for i in item["question"] if i]
  assert text == ["is", "there", "a", "big", "rubber", "<UNK>", "?"]        # "blocks" unseen
  assert vqa.Vocab.from_json(words.to_json()).words == words.words


@pytest.mark.parametrize("kwargs,message", [
    (dict(drop_image=True), r"image file .*CLEVR_val_000000.png' \(question 0\) does not exist"),
    (dict(bad_answer=True), r"has answers the training questions never give: \['sphere'\]"),
])
def test_clevr_format_errors(tmp_path, kwargs, message):
  f = write_clevr(tmp_path, **kwargs)
  with pytest.raises(ValueError, match=message):
    vqa.load_clevr(f["train"][0], f["val"][0], (f["train"][1], f["val"][1]), image_size=24)


def test_clevr_malformed_and_missing_files(tmp_path):
  bad = tmp_path / "q.json"
  bad.write_text(json.dumps({"questions": [{"question": "x?"}]}))
  with pytest.raises(ValueError, match="is not in the CLEVR format"):
    vqa.load_clevr(str(bad), str(bad), (str(tmp_path), str(tmp_path)), image_size=8)
  with pytest.raises(ValueError, match="questions file '/nope.json' does not exist"):
    vqa.load_clevr("/nope.json", str(bad), (str(tmp_path), str(tmp_path)), image_size=8)


def test_compare_tabulates_mean_and_spread_over_seeds(tmp_path):
  from experiments.vqa import compare  # pylint: disable=g-import-not-at-top
  runs = []
  for label, seed, acc in (("concat", 0, 0.5), ("concat", 1, 0.7), ("attention", 0, 0.9)):
    d = tmp_path / f"{label}{seed}"
    d.mkdir()
    r = {"accuracy": acc, "kinds": {"relational": {"accuracy": 0.25}}}
    if label == "attention":
      r["pointing"] = {"non-relational": [{"lands": 0.75, "cells": 0.5}] * 2}
    (d / "results.json").write_text(json.dumps(r))
    runs.append(f"{label}:{d}")
  lines = compare.table(compare.common.read_results(runs, "vqa")).splitlines()
  assert len(lines) == 4 and "| shape |" not in lines[0]      # no run has subtypes
  assert lines[0].startswith("| fusion | seeds | accuracy | relational | lands, hop 1 |")
  assert lines[2].startswith("| concat | 2 | 0.600 ± 0.141 | 0.250 ± 0.000 | – |")
  assert lines[3].startswith("| attention | 1 | 0.900 | 0.250 | 0.750 | 0.750 | 0.500 |")
  with pytest.raises(ValueError, match="has no results.json"):
    compare.common.read_results([f"x:{tmp_path}"], "vqa")


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
  """An unwritable --output failed with a traceback after the work."""
  from experiments import common  # pylint: disable=g-import-not-at-top
  work = []
  for output, message in ((str(tmp_path / "no" / "t.md"), "whose folder"),
                          (str(tmp_path), "which is a folder")):
    with pytest.raises(SystemExit) as e:
      common.print_table(lambda: work.append(1) or "table", output)
    assert e.value.code == 2 and message in capsys.readouterr().err
  assert not work
  common.print_table(lambda: "| a |", str(tmp_path / "t.md"))
  assert (tmp_path / "t.md").read_text() == "| a |"


@pytest.mark.parametrize("edit,message", [
    (lambda qs: [dict(qs[0], image_filename="../../etc/passwd")] + qs[1:],
     r"image_filename '../../etc/passwd' leads outside"),
    (lambda qs: [dict(qs[0], image_filename="/etc/passwd")] + qs[1:],
     r"image_filename '/etc/passwd' is an absolute path"),
    (lambda qs: [dict(q, question_index=0) for q in qs],
     r"questions 0 and 1 share question_index 0 \(each question's predictions"),
    (lambda qs: [dict(qs[0], answer=None)] + qs[1:], r"question 0 has answer None \(NoneType\); answers must be strings"),
    (lambda qs: [dict(qs[0], answer=["yes"])] + qs[1:], r"answer \['yes'\] \(list\)"),
    (lambda qs: [dict(qs[0], answer=True)] + qs[1:], r"answer True \(bool\)"),
    (lambda qs: [dict(qs[0], answer=" ")] + qs[1:], r"question 0 has an empty answer"),
    (lambda qs: [dict(qs[0], image_index=0.7)] + qs[1:], r"question 0's image_index must be an integer, got 0.7 \(float\)"),
    (lambda qs: [dict(qs[0], question_index="3")] + qs[1:], r"question_index must be an integer, got '3' \(str\)"),
])
def test_clevr_records_are_checked(tmp_path, edit, message):
  """Shared question indices (one prediction kept for 12 scored) and
  answers that are not strings (each its own class) were accepted."""
  f = write_clevr(tmp_path)
  data = json.loads(open(f["val"][0]).read())
  data["questions"] = edit(data["questions"])
  open(f["val"][0], "w").write(json.dumps(data))
  with pytest.raises(ValueError, match=message):
    vqa.load_clevr(f["train"][0], f["val"][0], (f["train"][1], f["val"][1]), image_size=24)


def test_a_numeric_answer_written_as_a_json_number_is_its_digits(tmp_path):
  f = write_clevr(tmp_path)
  data = json.loads(open(f["train"][0]).read())
  data["questions"][1]["answer"] = 2          # the file's "2", as a number
  open(f["train"][0], "w").write(json.dumps(data))
  _, _, answers = vqa.load_clevr(f["train"][0], f["val"][0], (f["train"][1], f["val"][1]),
                                 image_size=24)
  assert answers.words == ["2", "cube", "no", "yes"]


def test_clevr_images_that_do_not_decode_stop_the_loader(tmp_path, monkeypatch):
  """A corrupt image failed mid-training (after checkpoint 4); it is found
  when the questions are loaded."""
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  f = write_clevr(tmp_path / "data")
  bad = pathlib.Path(f["val"][1]) / "CLEVR_val_000000.png"
  bad.write_bytes(bad.read_bytes()[:50])
  with pytest.raises(ValueError, match=r"CLEVR_val_000000.png' cannot be read as an image"):
    vqa.load_clevr(f["train"][0], f["val"][0], (f["train"][1], f["val"][1]), image_size=24)
