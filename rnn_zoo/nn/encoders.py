"""Image encoders: a small CNN trained end to end, giving a spatial map of
annotations (for attention) and their mean (for the initial state)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_zoo.errors import UserError


class ConvEncoder(nn.Module):
  """``[B, S, S, 3]`` images in [0, 1] -> ``[B, L, D]`` annotations.

  ``len(channels)`` blocks of 3x3 convolution + ReLU, each but the first
  halving the resolution (stride 2; the first too with ``first_stride=2``):
  a 64x64 image with 4 blocks gives an 8x8 map, L = 64 locations of D =
  ``channels[-1]`` features (any image size: L = ceil(S / 2**(halvings))**2).

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
    for i, c in enumerate(self.channels):
      stride = self.first_stride if i == 0 else 2
      x = nn.relu(nn.Conv(c, (3, 3), strides=stride, name=f"conv_{i}")(x))
    return x.reshape(x.shape[0], -1, x.shape[-1])


def num_locations(image_size: int, blocks: int, first_stride: int = 1) -> int:
  """L of :class:`ConvEncoder` for square images of ``image_size``."""
  side = image_size
  for _ in range(blocks - 1 + (first_stride == 2)):
    side = -(-side // 2)
  return side * side
