"""The CNN encoder: shapes, and that ``local=True`` locations see only their
own cell of the image (and the default's do see beyond it)."""

import jax
import numpy as np
import pytest

from rnn_zoo.nn.encoders import ConvEncoder, num_locations, with_coordinates


def changed_locations(enc, rows, cols):
  x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
  params = enc.init(jax.random.key(1), x)
  y = enc.apply(params, x)
  x2 = x.at[1, rows, cols].set(0.0)
  d = np.abs(np.asarray(enc.apply(params, x2) - y)).sum(-1)
  assert d[0].max() == 0.0                  # other images untouched
  return set(np.nonzero(d[1] > 0)[0].tolist()), y.shape


@pytest.mark.parametrize("first_stride,skip", [(1, False), (2, False), (2, True)])
def test_local_locations_see_only_their_own_cell(first_stride, skip):
  channels = (4, 8, 8, 8)
  enc = ConvEncoder(channels=channels, local=True, first_stride=first_stride, skip=skip)
  cell = 8 * first_stride
  side = 64 // cell
  # Blank one whole cell (row 2, column 1 of the grid): its location alone changes.
  changed, shape = changed_locations(enc, slice(2 * cell, 3 * cell), slice(cell, 2 * cell))
  depth = 8 + 4 * skip                      # skip: + the first block, pooled
  assert shape == (2, num_locations(64, len(channels), first_stride), depth)
  assert shape[1] == side ** 2
  assert changed == {2 * side + 1}
  # One pixel in the corner of a cell: still only that cell's location.
  changed, _ = changed_locations(enc, slice(cell, cell + 1), slice(cell, cell + 1))
  assert changed == {side + 1}


def test_the_default_encoder_sees_past_its_cell():
  enc = ConvEncoder(channels=(4, 8, 8, 8))
  changed, _ = changed_locations(enc, slice(8, 9), slice(8, 9))
  assert len(changed) > 1                   # a 17-pixel receptive field


def test_local_needs_an_image_divisible_into_cells():
  enc = ConvEncoder(channels=(4, 8, 8, 8), local=True)
  x = np.zeros((1, 60, 60, 3), np.float32)
  with pytest.raises(ValueError, match=r"local=True cuts the image into 8x8-pixel cells: "
                     r"its size must be divisible by 8, got 60x60"):
    enc.init(jax.random.key(0), x)


def test_with_coordinates_appends_each_locations_x_and_y():
  feats = np.zeros((2, 9, 4), np.float32)
  out = np.asarray(with_coordinates(feats))
  assert out.shape == (2, 9, 6)
  # Row-major over a 3x3 grid: location 5 is row 1, column 2 -> (x, y) = (1, 0).
  np.testing.assert_allclose(out[1, 5, 4:], [1.0, 0.0])
  np.testing.assert_allclose(out[0, 6, 4:], [-1.0, 1.0])
  with pytest.raises(ValueError, match="features must cover a square grid of locations, got L = 8"):
    with_coordinates(np.zeros((1, 8, 4), np.float32))
