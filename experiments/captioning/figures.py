"""Attention-map figures: the image, then one heat map per generated word
over it (the figure of Show, Attend and Tell)."""

from __future__ import annotations

import numpy as np

from rnn_zoo.metrics import attention_maps


def attention_grid(path: str, rows: list[dict], *, max_words: int = 10) -> None:
  """Writes a PNG with one row per image.

  Args:
    path: the PNG to write.
    rows: dicts with ``image`` (uint8 or [0, 1] float ``[S, S, 3]``),
      ``words`` (the generated words), ``alphas`` (``[T >= len(words), L]``,
      or None for a decoder without attention) and ``title`` (shown over
      the image: e.g. the references or the image's file name).
    max_words: words drawn per image at most (the rest are cut).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  cols = 1 + max(min(len(r["words"]) + 1, max_words) for r in rows)
  fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.85 * len(rows)),
                           squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for r, row in enumerate(rows):
    image = np.asarray(row["image"])
    image = image / 255.0 if image.dtype == np.uint8 else image
    size = image.shape[0]
    axes[r, 0].imshow(image)
    axes[r, 0].set_title(row.get("title", ""), fontsize=6, loc="left")
    words = list(row["words"]) + ["<END>"]
    alphas = row.get("alphas")
    # One colour scale per image (a flat map looks flat, a peaked one peaked).
    top = float(np.max(np.asarray(alphas)[:len(words)])) if alphas is not None else 1.0
    for t, word in enumerate(words[:cols - 1]):
      ax = axes[r, t + 1]
      ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1)
      if alphas is not None:
        heat = attention_maps.upsample_attention(np.asarray(alphas)[t], size)
        cells = heat * heat.size / np.asarray(alphas)[t].size   # back to alpha units
        ax.imshow(cells, cmap="inferno", alpha=0.6, vmin=0, vmax=max(top, 1e-12),
                  interpolation="bilinear")
      ax.set_title(word, fontsize=8)
  fig.tight_layout(pad=0.2)
  fig.savefig(path, dpi=90)
  plt.close(fig)
