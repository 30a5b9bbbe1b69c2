"""Sort-of-CLEVR, generated: deterministic scenes, six non-overlapping
objects one per colour, 10 + 10 questions whose stored answers are right."""

import numpy as np
import pytest

from rnn_zoo.data import sort_of_clevr as soc


def test_scenes_are_deterministic_and_differ_by_split_and_index():
  a, b = soc.make_scene("train", 3), soc.make_scene("train", 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.image, soc.make_scene("train", 4).image)
  assert not np.array_equal(a.image, soc.make_scene("test", 3).image)


@pytest.mark.parametrize("split", list(soc.SPLITS))
def test_objects_and_answers_are_right(split):
  counts = np.zeros(len(soc.SUBTYPE_NAMES), int)
  answers = set()
  for i in range(40):
    sc = soc.make_scene(split, i)
    assert sc.image.shape == (75, 75, 3) and sc.image.dtype == np.uint8
    # Every object is drawn in its colour at its centre, none overlap.
    for k, colour in enumerate(soc.COLOURS):
      x, y = sc.centre[k].astype(int)
      assert tuple(sc.image[y, x]) == soc.RGB[colour]
      others = np.delete(sc.centre, k, axis=0)
      assert np.all(np.max(np.abs(others - sc.centre[k]), axis=1) > 2 * soc.OBJECT_SIZE + 1)
    assert sc.questions.shape == (20, soc.MAX_QUESTION_LENGTH)
    assert list(sc.subtype // 3) == [0] * 10 + [1] * 10
    for q, a, s, c, bits in zip(sc.questions, sc.answers, sc.subtype, sc.colour, sc.bits):
      name, colour = soc.SUBTYPE_NAMES[s], soc.COLOURS[c]
      assert soc.decode_question(q) == soc.question_text(name, colour)
      assert soc.ANSWERS[a] == soc.answer(name, colour, sc.shape, sc.centre)
      np.testing.assert_array_equal(bits, soc.question_bits(name, colour))
      counts[s] += 1
      answers.add(soc.ANSWERS[a])
  assert counts.min() > 60                        # every subtype is asked
  assert {"square", "circle", "left", "right", "top", "bottom"} <= answers


def test_answers_on_a_hand_made_scene():
  shape = [0, 0, 1, 1, 1, 0]                      # red square, green square, blue circle...
  centre = [[10, 10], [20, 10], [60, 60], [10, 70], [70, 10], [40, 40]]
  ask = lambda s, c: soc.answer(s, c, shape, centre)
  assert ask("shape", "blue") == "circle" and ask("shape", "red") == "square"
  assert ask("horizontal", "red") == "left" and ask("horizontal", "gray") == "right"
  assert ask("vertical", "red") == "top" and ask("vertical", "orange") == "bottom"
  assert ask("closest", "red") == "square"        # green, 10 px away
  assert ask("furthest", "red") == "circle"       # blue at (60, 60)
  assert ask("count", "red") == "3" and ask("count", "blue") == "3"


def test_question_encoding_and_bits():
  q = "what shape is the object closest to the gray object ?"
  ids = soc.encode_question(q)
  assert ids.shape == (soc.MAX_QUESTION_LENGTH,) and soc.decode_question(ids) == q
  bits = soc.question_bits("closest", "gray")
  assert bits.tolist() == [0, 0, 0, 0, 1, 0] + [0, 1] + [1, 0, 0]
  with pytest.raises(ValueError, match="outside the question vocabulary: \\['purple'\\]"):
    soc.encode_question("what shape is the purple object ?")
  with pytest.raises(ValueError, match="subtype must be one of"):
    soc.question_bits("size", "red")
  with pytest.raises(ValueError, match="split must be one of"):
    soc.make_scene("dev", 0)
