"""Where an attention map looked: maps over a square grid of CNN locations
(:class:`rnn_zoo.nn.encoders.ConvEncoder`) spread over the image's pixels,
the share of a map's mass on an object's mask, and the pointing evaluation
of a generated caption (where attention looked while each object word came
out). Used by the captioning and VQA evaluations and figures.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rnn_zoo.data.shape_language import _matches, object_words, tokenize
from rnn_zoo.errors import UserError


def pixel_locations(side: int, size: int) -> np.ndarray:
  """``[size, size]``: the index of the location (of a ``side`` x ``side``
  grid of :class:`ConvEncoder` locations over the image) each pixel falls
  in (rows and columns split evenly)."""
  cell = (np.arange(size) * side) // size                 # pixel -> grid row/column
  return cell[:, None] * side + cell[None, :]


def _grid_side(alpha) -> int:
  side = int(round(np.sqrt(alpha.shape[-1])))
  if side * side != alpha.shape[-1] or alpha.ndim != 1:
    raise UserError(f"alpha must be [L] over a square grid of locations, got shape "
                    f"{alpha.shape}")
  return side


def upsample_attention(alpha: ArrayLike, size: int) -> np.ndarray:
  """``[L]`` attention over a square grid of locations -> ``[size, size]``
  mass per pixel (each location's weight spread evenly over the pixels it
  covers; the map sums to what ``alpha`` sums to)."""
  alpha = np.asarray(alpha, np.float64)
  loc = pixel_locations(_grid_side(alpha), size)
  pixels = np.bincount(loc.ravel(), minlength=alpha.shape[0])
  return alpha[loc] / pixels[loc]


def mass_on_mask(alpha: ArrayLike, mask: ArrayLike) -> tuple[float, float]:
  """Where an attention map looked, against an object's ``[S, S]`` bool
  mask: ``(pixels, cells)`` — the share of ``alpha``'s mass inside the mask
  (each location's weight spread evenly over its pixels) and the share on
  the locations that overlap the mask at all."""
  alpha, mask = np.asarray(alpha, np.float64), np.asarray(mask, bool)
  if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
    raise UserError(f"mask must be a square [S, S] image mask, got shape {mask.shape}")
  side = _grid_side(alpha)
  touched = np.zeros(side * side, bool)
  touched[pixel_locations(side, mask.shape[0])[mask]] = True
  return (float(np.sum(upsample_attention(alpha, mask.shape[0]) * mask)),
          float(np.sum(alpha[touched])))


def attention_pointing(caption: str, alphas: ArrayLike, objects: list[dict],
                       masks: ArrayLike) -> list[dict]:
  """Where attention looked while each object word of a generated caption
  was produced.

  Args:
    caption: the generated caption (its words are the decoder's outputs in
      order: word t came out of step t).
    alphas: ``[T, L]`` the attention weights of each step (``T`` at least the
      caption's length), over a square grid of ``L`` locations covering the
      image.
    objects: the scene graph (:meth:`Scene.objects`).
    masks: ``[M, S, S]`` bool, each object's visible pixels.

  Returns:
    One row per object phrase ("a [size] colour shape"): ``position`` (of
    the shape word), ``word``, ``matched`` (some object of the scene fits
    the phrase), ``mass`` (share of that step's attention inside the union of
    the matching objects' masks, the map spread evenly over each location's
    pixels; None when unmatched) and ``mass_cells`` (the share on locations
    that overlap those masks at all).
  """
  alphas, masks = np.asarray(alphas), np.asarray(masks, bool)
  rows = []
  for pos, attrs in object_words(caption):
    if pos >= alphas.shape[0]:
      raise UserError(f"alphas has {alphas.shape[0]} steps; caption {caption!r} needs "
                      f"{pos + 1}")
    hits = [i for i, o in enumerate(objects) if _matches(attrs, o)]
    row = {"position": pos, "word": tokenize(caption)[pos], "matched": bool(hits),
           "mass": None, "mass_cells": None}
    if hits:
      row["mass"], row["mass_cells"] = mass_on_mask(alphas[pos],
                                                            masks[hits].any(axis=0))
    rows.append(row)
  return rows


__all__ = ["pixel_locations", "upsample_attention", "mass_on_mask",
           "attention_pointing"]
