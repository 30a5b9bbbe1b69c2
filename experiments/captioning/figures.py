"""Attention-map figures: the image, then one heat map per generated word
over it (the figure of Show, Attend and Tell)."""

from __future__ import annotations

import numpy as np

from rnn_zoo.metrics import attention_maps

_DPI = 90
_PANEL = 128      # pixels per panel
_GAP = 8          # pixels between panels
_TITLE = 20       # pixels above each row for the titles
_HEAT_ALPHA = 0.6


def _resize_matrix(size: int, out: int) -> np.ndarray:
  """``[out, size]`` bilinear interpolation weights (pixel centres aligned,
  edges clamped), as image libraries resize."""
  x = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
  lo = np.floor(x).astype(int)
  hi = np.minimum(lo + 1, size - 1)
  w = x - lo
  m = np.zeros((out, size))
  m[np.arange(out), lo] += 1 - w
  m[np.arange(out), hi] += w
  return m


def attention_grid(path: str, rows: list[dict], *, max_words: int = 10) -> None:
  """Writes a PNG with one row per image.

  The panels are composed into one image and drawn on one matplotlib axes
  (an axes per panel took ~3 s a figure of 8 images, more than the
  captioning binary's whole evaluation otherwise).

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
  inferno = matplotlib.colormaps["inferno"]

  cols = 1 + max(min(len(r["words"]) + 1, max_words) for r in rows)
  step_x, step_y = _PANEL + _GAP, _PANEL + _TITLE
  width, height = cols * step_x, len(rows) * step_y
  canvas = np.ones((height, width, 3))
  texts = []   # (x, y, text, fontsize, horizontal alignment), in pixels
  for r, row in enumerate(rows):
    image = np.asarray(row["image"])
    image = image / 255.0 if image.dtype == np.uint8 else np.asarray(image, np.float64)
    size = image.shape[0]
    nearest = np.arange(_PANEL) * size // _PANEL
    shown = np.clip(image[nearest][:, nearest], 0.0, 1.0)
    gray = np.repeat(shown.mean(axis=-1, keepdims=True), 3, axis=-1)
    top_y = r * step_y + _TITLE

    def put(c, panel, top_y=top_y):
      canvas[top_y:top_y + _PANEL, c * step_x:c * step_x + _PANEL] = panel

    put(0, shown)
    texts.append((2, r * step_y + _TITLE - 4, row.get("title", ""), 6, "left"))
    words = list(row["words"]) + ["<END>"]
    alphas = None if row.get("alphas") is None else np.asarray(row["alphas"])
    # One colour scale per image (a flat map looks flat, a peaked one peaked).
    top = max(float(np.max(alphas[:len(words)])), 1e-12) if alphas is not None else 1.0
    smooth = _resize_matrix(size, _PANEL)
    for t, word in enumerate(words[:cols - 1]):
      panel = gray
      if alphas is not None:
        heat = attention_maps.upsample_attention(alphas[t], size)
        cells = heat * heat.size / alphas[t].size   # back to alpha units
        colour = inferno(np.clip(smooth @ cells @ smooth.T / top, 0.0, 1.0))[..., :3]
        panel = _HEAT_ALPHA * colour + (1 - _HEAT_ALPHA) * gray
      put(t + 1, panel)
      texts.append(((t + 1) * step_x + _PANEL / 2, r * step_y + _TITLE - 4, word, 8,
                    "center"))
  fig = plt.figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
  ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
  ax.imshow(canvas, interpolation="nearest")
  ax.axis("off")
  for x, y, text, fontsize, ha in texts:
    fig.text(x / width, 1 - y / height, text, fontsize=fontsize, ha=ha, va="bottom")
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)
