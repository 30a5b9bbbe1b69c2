"""The captioning data: synthetic scenes and their captions, the checker of
captions, the tfds builder, the word vocabulary, COCO-format files, grain."""

import json

import numpy as np
import pytest

from rnn_zoo.data import captions
from rnn_zoo.data import shapes
from rnn_zoo.data import shape_language
from rnn_zoo.metrics import attention_maps


def test_scenes_are_deterministic_and_vary():
  a, b = shapes.make_scene("train", 17), shapes.make_scene("train", 17)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  c = shapes.make_scene("train", 18)
  assert not np.array_equal(a.image, c.image)
  assert not np.array_equal(a.image, shapes.make_scene("test", 17).image)


@pytest.mark.parametrize("split", sorted(shapes.SPLITS))
def test_every_reference_caption_is_true_of_its_scene(split):
  counts = set()
  for i in range(120):
    scene = shapes.make_scene(split, i)
    objs = scene.objects()
    counts.add(len(objs))
    assert len(scene.captions) == shapes.NUM_REFERENCES
    for c in scene.captions:
      truth = shape_language.caption_truth(c, objs)
      assert truth["parsed"] and truth["true"], (c, objs)
    # Masks: one per object, disjoint, at least a third of each object
    # visible, none for absent objects; the object's colour where visible.
    m = scene.masks
    assert not np.any(m.sum(0) > 1)
    for j in range(shapes.MAX_OBJECTS):
      if j < len(objs):
        assert m[j].sum() >= shapes.footprint_size(objs[j]) / 3, (split, i, j)
        assert (scene.image[m[j]] == shapes.RGB[objs[j]["colour"]]).all()
      else:
        assert not m[j].any()
    assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
  assert counts == {1, 2, 3, 4}


def test_held_out_pairs_appear_only_in_the_compositional_split():
  held = set(shapes.HELD_OUT)
  for split in ("train", "validation", "test"):
    for i in range(300):
      pairs = {(o["colour"], o["shape"]) for o in shapes.make_scene(split, i).objects()}
      assert not pairs & held, (split, i, pairs)
  for i in range(100):
    pairs = {(o["colour"], o["shape"]) for o in shapes.make_scene("compositional", i).objects()}
    assert pairs & held


def test_caption_truth_catches_false_and_unparsable_captions():
  objs = [{"shape": "circle", "colour": "red", "size": "small", "x": 10, "y": 10},
          {"shape": "square", "colour": "blue", "size": "large", "x": 12, "y": 40}]
  t = lambda c: shape_language.caption_truth(c, objs)
  assert t("a small red circle above a large blue square")["true"]
  assert t("a red circle above a blue square")["named"] == {0, 1}
  assert not t("a red circle below a blue square")["true"]          # wrong relation
  assert not t("a green circle above a blue square")["true"]        # no such object
  assert not t("a large red circle")["true"]                        # wrong size
  assert t("two shapes")["true"] and not t("three shapes")["true"]
  assert not t("one shapes")["parsed"] and t("one shape")["parsed"]
  assert t("a red circle and a blue square")["true"]
  assert not t("a red circle and a red circle")["true"]              # needs two
  for garbage in ("", "red circle", "a red", "a red circle above", "a red circle a blue square",
                  "there is two shapes", "a red circle above a blue square above"):
    assert not t(garbage)["parsed"], garbage
  assert shape_language.object_words("a small red circle above a blue square") == [
      (3, {"size": "small", "colour": "red", "shape": "circle"}),
      (7, {"colour": "blue", "shape": "square"})]


def test_attention_upsampling_keeps_the_mass_and_the_grid():
  alpha = np.zeros(64)
  alpha[9] = 1.0                                 # row 1, column 1 of an 8x8 grid
  up = attention_maps.upsample_attention(alpha, 64)
  assert up.shape == (64, 64) and np.isclose(up.sum(), 1.0)
  assert np.isclose(up[8:16, 8:16].sum(), 1.0)   # that location's 8x8 pixels
  odd = attention_maps.upsample_attention(np.full(9, 1 / 9), 64)   # 3x3 grid, 64 not divisible
  assert np.isclose(odd.sum(), 1.0)
  with pytest.raises(ValueError, match=r"alpha must be \[L\] over a square grid"):
    attention_maps.upsample_attention(np.ones(10) / 10, 64)


def test_attention_pointing_measures_mass_inside_the_named_object():
  objs = [{"shape": "square", "colour": "red", "size": "small", "x": 12, "y": 12},
          {"shape": "circle", "colour": "blue", "size": "large", "x": 44, "y": 44}]
  masks = np.zeros((4, 64, 64), bool)
  masks[0, 8:16, 8:20] = True                    # the red square: cells (1,1) and half of (1,2)
  masks[1, 40:56, 40:56] = True                  # the blue "circle": cells (5..6, 5..6)
  caption = "a red square above a large blue circle"   # object words at 2 and 7
  alphas = np.zeros((8, 64))
  alphas[2, 9] = 0.5                             # half on (1,1): inside
  alphas[2, 10] = 0.5                            # half on (1,2): half its pixels inside
  alphas[7, 0] = 1.0                             # the blue circle's word looks at (0,0)
  rows = attention_maps.attention_pointing(caption, alphas, objs, masks)
  assert [(r["position"], r["word"], r["matched"]) for r in rows] == [
      (2, "square", True), (7, "circle", True)]
  assert np.isclose(rows[0]["mass"], 0.5 + 0.25) and np.isclose(rows[0]["mass_cells"], 1.0)
  assert rows[1]["mass"] == 0.0 and rows[1]["mass_cells"] == 0.0
  false = attention_maps.attention_pointing("a green triangle", alphas, objs, masks)
  assert false == [{"position": 2, "word": "triangle", "matched": False, "mass": None,
                    "mass_cells": None}]
  assert attention_maps.attention_pointing("two shapes", alphas, objs, masks) == []
  with pytest.raises(ValueError, match="alphas has 3 steps"):
    attention_maps.attention_pointing(caption, alphas[:3], objs, masks)


def test_tfds_builder_prepares_the_same_scenes(tmp_path, monkeypatch):
  import tempfile  # pylint: disable=g-import-not-at-top
  scratch = tmp_path / "tmp"
  scratch.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  src = captions.shape_captions(str(tmp_path / "a"), "tiny")
  assert list(scratch.iterdir()) == []   # tfds left an empty tmp*tfds per preparation
  assert {k: len(v) for k, v in src.items()} == captions.SIZES["tiny"]
  again = captions.shape_captions(str(tmp_path / "b"), "tiny")
  for split in ("train", "compositional"):
    for i in range(len(src[split])):
      ex, ex2 = src[split][i], again[split][i]
      scene = shapes.make_scene(split, int(ex["index"]))
      np.testing.assert_array_equal(ex["image"], scene.image)
      np.testing.assert_array_equal(ex["masks"], scene.masks)
      np.testing.assert_array_equal(ex["image"], ex2["image"])
      assert [c.decode() for c in ex["captions"]] == scene.captions
      assert captions.scene_of(ex) == [
          {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in o.items()}
          for o in scene.objects()]
  with pytest.raises(ValueError, match="config must be one of"):
    captions.shape_captions(str(tmp_path), "huge")


def test_word_vocab():
  v = captions.WordVocab.build(["A red circle.", "a red square", "a blue circle"], min_count=2)
  assert v.words[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
  assert v.words[4:] == ["a", "circle", "red"]
  ids = v.encode("a blue circle", max_length=5)
  assert ids.tolist() == [1, 4, 3, 5, 2, 0, 0]            # blue is <UNK>
  assert v.decode(ids) == "a <UNK> circle"
  assert v.encode("a red red red red red red", max_length=3).tolist() == [1, 4, 6, 6, 2]
  assert captions.WordVocab.from_json(json.loads(json.dumps(v.to_json()))) == v
  with pytest.raises(ValueError, match="caption must hold at least one word"):
    v.encode("  ,. ", max_length=4)
  with pytest.raises(ValueError, match="token id 40 is outside the vocabulary of 7"):
    v.decode([1, 40])


def write_coco_fixture(root, *, drop_image=False, extra_annotation=None, empty=False):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = root / "images"
  images.mkdir(parents=True, exist_ok=True)
  for i, colour in ((1, (255, 0, 0)), (7, (0, 0, 255))):
    if not (drop_image and i == 7):
      Image.new("RGB", (40, 30), colour).save(images / f"im_{i}.png")
  anns = [{"image_id": 1, "id": 10, "caption": "A red picture."},
          {"image_id": 1, "id": 11, "caption": "red"},
          {"image_id": 7, "id": 12, "caption": "" if empty else "a blue one"}]
  if extra_annotation:
    anns.append(extra_annotation)
  path = root / "captions_val.json"
  path.write_text(json.dumps({
      "images": [{"id": 1, "file_name": "im_1.png"}, {"id": 7, "file_name": "im_7.png"}],
      "annotations": anns}))
  return path, images


def test_coco_loader_round_trip(tmp_path):
  path, images = write_coco_fixture(tmp_path)
  src = captions.load_coco_captions(str(path), str(images), image_size=16)
  assert len(src) == 2
  ex = src[0]
  assert ex["image_id"] == 1 and ex["captions"] == ["A red picture.", "red"]
  assert ex["image"].shape == (16, 16, 3) and ex["image"][0, 0].tolist() == [255, 0, 0]
  assert src[1]["image"][5, 5].tolist() == [0, 0, 255]
  refs = tmp_path / "refs.json"
  captions.write_coco_references(src, str(refs))
  data = json.loads(refs.read_text())
  assert [a["caption"] for a in data["annotations"]] == ["A red picture.", "red", "a blue one"]
  vocab = captions.WordVocab.build([c for i in range(len(src)) for c in src[i]["captions"]])
  batch = captions.batches(src, vocab, batch_size=2, max_length=4, seed=0, train=False)[0]
  assert batch["image"].shape == (2, 16, 16, 3) and batch["image"].max() <= 1.0


@pytest.mark.parametrize("kwargs,message", [
    ({"drop_image": True}, "im_7.png' \\(image_id 7\\) does not exist"),
    ({"extra_annotation": {"image_id": 3, "id": 99, "caption": "x"}}, "names image_id 3"),
    ({"empty": True}, "image 7 has an empty caption"),
])
def test_coco_loader_errors(tmp_path, kwargs, message):
  path, images = write_coco_fixture(tmp_path, **kwargs)
  with pytest.raises(ValueError, match=message):
    captions.load_coco_captions(str(path), str(images))


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["images"][0].update(file_name="/etc/passwd"),
     r"the file_name of image 1 '/etc/passwd' is an absolute path"),
    (lambda d: d["images"][0].update(file_name="../../../etc/passwd"),
     r"the file_name of image 1 '../../../etc/passwd' leads outside"),
    (lambda d: d["images"][1].update(id=1),
     r"images\[1\] repeats image id 1 \(of 'im_1.png'\); ids must be unique"),
    (lambda d: d["images"][1].update(id=0.7), r"images\[1\].id must be an integer, got 0.7"),
    (lambda d: d["images"][1].update(id=True), r"images\[1\].id must be an integer, got True"),
    (lambda d: d["annotations"][0].update(image_id="1"),
     r"annotations\[0\].image_id must be an integer, got '1' \(str\)"),
    (lambda d: d["annotations"][0].update(caption=5),
     r"image 1 has a caption that is not a string: 5 \(int\)"),
])
def test_coco_records_are_checked(tmp_path, edit, message):
  """File names that read any file on the machine, duplicate ids that
  overwrote each other, ids 0.7/true read as 0/1, non-string captions
  called empty."""
  path, images = write_coco_fixture(tmp_path)
  data = json.loads(path.read_text())
  edit(data)
  path.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=message):
    captions.load_coco_captions(str(path), str(images), image_size=16)


def test_coco_loader_malformed_and_missing_files(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"images": [{"file": "x"}]}))
  with pytest.raises(ValueError, match="not in the COCO captions format"):
    captions.load_coco_captions(str(bad), str(tmp_path))
  with pytest.raises(ValueError, match="does not exist"):
    captions.load_coco_captions(str(tmp_path / "nope.json"), str(tmp_path))


class ListSource:
  def __init__(self, n):
    self.items = [{"image": np.full((2, 2, 3), i, np.uint8),
                   "captions": [f"word{i}", f"other{i}"]} for i in range(n)]

  def __len__(self):
    return len(self.items)

  def __getitem__(self, i):
    return self.items[i]


def test_grain_batches_are_a_function_of_the_step():
  src = ListSource(10)
  vocab = captions.WordVocab.build([c for ex in src.items for c in ex["captions"]])
  make = lambda: captions.batches(src, vocab, batch_size=5, max_length=3, seed=4)
  a, b = make(), make()
  for s in (0, 1, 7, 123):
    for k in ("image", "tokens", "index"):
      np.testing.assert_array_equal(a[s][k], b[s][k])      # a resumed run reads the same
  # Each epoch (2 batches of 5) covers every example once, in a new order.
  epochs = [np.concatenate([a[2 * e]["index"], a[2 * e + 1]["index"]]) for e in range(3)]
  for e in epochs:
    assert sorted(e.tolist()) == list(range(10))
  assert not np.array_equal(epochs[0], epochs[1])
  # The caption drawn is one of the example's references.
  batch = a[3]
  for idx, toks in zip(batch["index"], batch["tokens"]):
    assert vocab.decode(toks) in src.items[int(idx)]["captions"]
  # Evaluation: in order, once, the first reference.
  ev = captions.batches(src, vocab, batch_size=4, max_length=3, seed=0, train=False)
  assert len(ev) == 3
  assert np.concatenate([ev[i]["index"] for i in range(3)]).tolist() == list(range(10))
  assert vocab.decode(ev[0]["tokens"][1]) == "word1"


def test_tfds_coco_captions_fails_fast_without_tensorflow_or_internet(monkeypatch):
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from rnn_zoo.data import catalog  # pylint: disable=g-import-not-at-top
  start = time.monotonic()
  if "tensorflow" not in sys.modules:       # this machine: no TensorFlow
    with pytest.raises(ValueError, match=r"dataset 'coco_captions' needs TensorFlow.*"
                       r"--config.dataset=coco --config.coco_train="):
      captions.tfds_coco_captions(None)
  # TensorFlow present but offline: said in seconds, not after tfds's retries.
  monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
  monkeypatch.setattr(catalog, "online", lambda *a, **k: False)
  with pytest.raises(ValueError, match=r"dataset 'coco_captions' is not prepared in .* "
                     r"internet is unreachable .*download_and_prepare"):
    captions.tfds_coco_captions(None)
  assert time.monotonic() - start < 15


def _png_bytes(size=(40, 30)):
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  Image.new("RGB", size, (9, 9, 9)).save(buf, format="PNG")
  return buf.getvalue()


UNREADABLE = {
    "corrupt": lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "truncated": lambda: _png_bytes()[:60],
    "zero-byte": lambda: b"",
    "text": lambda: b"this is not an image\n",
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_unreadable_images_stop_the_loader_with_one_line(tmp_path, monkeypatch, kind):
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  path, images = write_coco_fixture(tmp_path)
  (images / "im_7.png").write_bytes(UNREADABLE[kind]())
  with pytest.raises(ValueError, match=r"image file '.*im_7.png' cannot be read as an image"):
    captions.load_coco_captions(str(path), str(images), image_size=16)


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from rnn_zoo.data import images as images_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  path, images = write_coco_fixture(tmp_path)
  monkeypatch.setattr(images_lib, "MAX_IMAGE_PIXELS", 1000)     # 40 x 30 = 1,200
  with pytest.raises(ValueError, match=r"im_1.png' is 40 x 30 pixels, over the loaders' "
                                       r"bound of 1,000 \(a decompression bomb\?\)"):
    captions.load_coco_captions(str(path), str(images), image_size=16)
  monkeypatch.setattr(images_lib, "MAX_IMAGE_PIXELS", 10**9)
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)            # PIL's own bound
  with pytest.raises(ValueError, match=r"im_1.png' is too large to decode safely"):
    captions.load_coco_captions(str(path), str(images), image_size=16)


def test_images_are_checked_once_and_again_when_they_change(tmp_path, monkeypatch):
  from rnn_zoo.data import images as images_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  path, images = write_coco_fixture(tmp_path)
  names = ["im_1.png", "im_7.png"]
  assert images_lib.check_images(str(images), names) == 2
  assert images_lib.check_images(str(images), names) == 0          # remembered
  (images / "im_7.png").write_bytes(_png_bytes((5, 5)))            # another size
  assert images_lib.check_images(str(images), names) == 1
  (images / "im_7.png").write_bytes(b"")
  with pytest.raises(ValueError, match="im_7.png' cannot be read"):
    images_lib.check_images(str(images), names)
  # A file that rots after its check is still named when it is read.
  (images / "im_7.png").write_bytes(_png_bytes())
  src = captions.load_coco_captions(str(path), str(images), image_size=16)
  (images / "im_7.png").write_bytes(b"rot")
  with pytest.raises(ValueError, match="im_7.png' cannot be read"):
    src[1]


def test_captions_are_read_without_decoding_images(tmp_path, monkeypatch):
  """The vocabulary and the evaluation references come from the captions
  alone (COCO's 83k training images were decoded at every start)."""
  from experiments.captioning import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.data import images as images_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
  path, images = write_coco_fixture(tmp_path)
  src = captions.load_coco_captions(str(path), str(images), image_size=16)

  def no_decoding(*args):
    raise AssertionError("an image was decoded")

  monkeypatch.setattr(images_lib, "read_rgb", no_decoding)
  assert workload._texts(src) == ["A red picture.", "red", "a blue one"]
  refs = tmp_path / "refs.json"
  captions.write_coco_references(src, str(refs))
  data = json.loads(refs.read_text())
  assert [im["id"] for im in data["images"]] == [1, 7]
  assert [a["image_id"] for a in data["annotations"]] == [1, 1, 7]
  # Sources without captions_of (the shapes data) are read item by item.
  assert captions.captions_of(ListSource(2), 1) == (1, ["word1", "other1"])
