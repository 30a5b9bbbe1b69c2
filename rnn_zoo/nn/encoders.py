"""Image encoders: a small CNN trained end to end, giving a spatial map of
annotations (for attention) and their mean (for the initial state)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo import compat
from rnn_zoo.errors import UserError


class ConvEncoder(nn.Module):
  """``[B, S, S, 3]`` images in [0, 1] -> ``[B, L, D]`` annotations.

  ``len(channels)`` blocks of 3x3 convolution + ReLU, each but the first
  halving the resolution (stride 2; the first too with ``first_stride=2``):
  a 64x64 image with 4 blocks gives an 8x8 map, L = 64 locations of D =
  ``channels[-1]`` features (any image size: L = ceil(S / 2**(halvings))**2).

  With ``local=True`` the image is first cut into the map's cells (S must be
  divisible by ``2**halvings``: 8x8-pixel cells for the 64x64 default) and
  the same blocks run on each cell alone, with zero padding at the cell's
  edges: a location's features depend on its own pixels only (receptive
  field = the cell), so what the decoder learns about an object it can only
  read from the locations the object covers. Same parameters, same L.

  With ``skip=True`` each location's features are followed by the first
  block's map max-pooled over the location's cell (D = ``channels[-1] +
  channels[0]``): fine-grained evidence, such as which colour is there,
  that the strided blocks blur together (Sort-of-CLEVR's binding of a
  question's colour to an object is learned with it and not without it:
  docs/vqa.md). Same parameters.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnn_zoo.nn.encoders import ConvEncoder
    >>> enc = ConvEncoder(channels=(8, 16, 16, 32))
    >>> images = jnp.zeros((2, 64, 64, 3))
    >>> enc.apply(enc.init(jax.random.key(0), images), images).shape
    (2, 64, 32)
  """
  channels: Sequence[int] = (16, 32, 64, 128)
  first_stride: int = 1     # 2: every block halves the resolution
  local: bool = False       # True: each location sees only its own cell of the image
  skip: bool = False        # True: append block 1's map max-pooled over each location

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise UserError(f"images must be [batch, height, width, 3], got shape "
                      f"{tuple(images.shape)}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise UserError(f"images must be floating (values in [0, 1]), got dtype "
                      f"{images.dtype}")
    if self.first_stride not in (1, 2):
      raise UserError(f"first_stride must be 1 or 2, got {self.first_stride!r}")
    x = images
    if self.local:
      B, S, W = images.shape[:3]
      cell = 2 ** (len(self.channels) - 1 + (self.first_stride == 2))
      if S % cell or W % cell:
        raise UserError(f"local=True cuts the image into {cell}x{cell}-pixel cells: "
                        f"its size must be divisible by {cell}, got {S}x{W}")
      g, h = S // cell, W // cell
      x = (images.reshape(B, g, cell, h, cell, 3).transpose(0, 1, 3, 2, 4, 5)
           .reshape(B * g * h, cell, cell, 3))
    first = None
    for i, c in enumerate(self.channels):
      stride = self.first_stride if i == 0 else 2
      x = nn.relu(nn.Conv(c, (3, 3), strides=stride, name=f"conv_{i}")(x))
      first = x if i == 0 else first
    if self.skip and first is not None:
      # Location j pools first-block positions [w j, w (j + 1)), w =
      # ceil(side_1 / side): windows tiled from the top-left corner.
      w = tuple(-(-a // b) for a, b in zip(first.shape[1:3], x.shape[1:3]))
      pad = tuple((0, k * n - a) for k, n, a in zip(w, x.shape[1:3], first.shape[1:3]))
      x = jnp.concatenate([x, nn.max_pool(first, w, strides=w, padding=pad)], axis=-1)
    # (local: the cells' 1x1 maps, back in row-major order per image)
    return x.reshape(images.shape[0], -1, x.shape[-1])


def with_coordinates(features: jax.Array) -> jax.Array:
  """``[B, L, D]`` annotations over a square grid (row-major) -> ``[B, L, D + 2]``
  with each location's (x, y) grid position in [-1, 1] appended."""
  side = int(round(np.sqrt(features.shape[1])))
  if side * side != features.shape[1]:
    raise UserError(f"features must cover a square grid of locations, got L = "
                    f"{features.shape[1]}")
  grid = np.linspace(-1.0, 1.0, side, dtype=np.float32)
  xy = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)     # (x, y), row-major
  coords = jnp.broadcast_to(jnp.asarray(xy, features.dtype), features.shape[:2] + (2,))
  return jnp.concatenate([features, coords], axis=-1)


def num_locations(image_size: int, blocks: int, first_stride: int = 1) -> int:
  """L of :class:`ConvEncoder` for square images of ``image_size``."""
  side = image_size
  for _ in range(blocks - 1 + (first_stride == 2)):
    side = -(-side // 2)
  return side * side


# Moved to rnn_zoo.metrics.attention_maps (analysis of attention maps).
__getattr__ = compat.moved(__name__, {
    n: "rnn_zoo.metrics.attention_maps" for n in (
        "pixel_locations", "upsample_attention", "mass_on_mask")})
