"""Config for image captioning (Show and Tell; Show, Attend and Tell).

Launch:
  python -m experiments.captioning --workdir=/tmp/cap_soft \
      --config=experiments/captioning/config.py:soft
  python -m experiments.captioning --workdir=/tmp/cap_plain \
      --config=experiments/captioning/config.py:plain
  python -m experiments.captioning --workdir=/tmp/cap_smoke \
      --config=experiments/captioning/config.py:smoke
Presets: "" and "soft" (soft attention), "plain" (Show and Tell), "hard"
(hard attention, REINFORCE), "soft_local" and "hard_local" (attention that
points at the object it names: local features, no context fed back into
the decoder, an entropy penalty), "smoke" (seconds: the tiny dataset, a few
steps). Data: the embedded shapes scenes (prepared into data_dir on first
use), or COCO-format captions (dataset="coco").
"""

import ml_collections

from experiments import common
from rnn_zoo.errors import UserError

PRESETS = ("", "soft", "plain", "hard", "soft_local", "hard_local", "smoke")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Seeds init, data order and hard attention's samples.
  # Data.
  c.dataset = "shapes"        # shapes (embedded) | coco (COCO-format files) | coco_tfds (tfds)
  c.data_config = "default"   # shapes: default (10k train images) | tiny (48)
  c.data_dir = ""             # tfds data dir ('': shapes ~/.cache/rnn_zoo/tfds; coco_tfds tfds's).
  c.coco_train = ""           # coco: captions_train.json (COCO captions format).
  c.coco_val = ""             # coco: captions_val.json.
  c.coco_images = ""          # coco: the folder of the images both files name.
  c.image_size = 64           # Images are S x S (coco: resized).
  c.max_length = 12           # Words per caption at most (longer ones are cut).
  c.min_count = 1             # Words rarer than this in training become <UNK>.
  # Model (cell block: experiments/common.py).
  c.mode = "soft"             # plain (Show and Tell) | soft | hard (attention)
  common.add_cell_fields(c, hidden_size=128)
  c.embed_size = 64           # Word embedding size.
  c.channels = (16, 32, 64, 128)  # CNN channels per block (stride 2 after the first).
  c.alpha_c = 1.0             # Doubly stochastic attention penalty weight.
  c.attention_query = "before"  # attend with h_{t-1} (the paper) | "after" the step (h_t)
  c.entropy_bonus = 0.002     # hard: attention entropy bonus.
  c.entropy_penalty = 0.0     # soft/hard: weight of the maps' entropy per word (sharpens).
  c.local_features = False    # each CNN location sees only its own 8x8 cell (+ its x, y)
  c.feed_context = True       # the decoder cell reads [word, context]; False: the word
  c.init_state = "mean"       # mean (h0 from the mean annotation, the paper) | zeros
  c.expectation_prob = 0.5    # hard: probability of the soft context at a step.
  c.baseline_decay = 0.9      # hard: moving average of the REINFORCE baseline.
  c.reinforce_reward = "caption"  # hard: caption (the paper) | to_go (per step: words t..T)
  # Optimization, logging, checkpoints (experiments/common.py).
  common.add_training_fields(c, batch_size=32, num_steps=3000, learning_rate=2e-3,
                             clip_norm=5.0, eval_every=500)
  c.eval_batches = 8          # Validation batches for the loss during training.
  # Final evaluation (captions decoded, scored, written).
  c.beam_size = 3             # Beam width (1: greedy).
  c.length_penalty = 1.0      # Beam ranking: logprob / length**length_penalty.
  c.hard_decoding = "sample"  # hard, at test: sample a location per step | expectation
  c.eval_splits = "validation,test,compositional"  # Splits decoded at the end (shapes).
  c.figure_images = 6         # Images drawn in each split's attention figure.

  if preset in (None, "", "soft"):
    pass
  elif preset == "plain":
    c.mode = "plain"
  elif preset == "hard":
    c.mode = "hard"
  elif preset in ("soft_local", "hard_local"):
    # Attention that points at the object it names (docs/captioning.md):
    # each location sees only its own 8x8 cell, the decoder starts blank and
    # its cell reads the words alone (it keeps no memory of the image), looks
    # after its step, the context feeds the output layer, and the maps'
    # entropy is penalized (no doubly stochastic term).
    c.mode = preset.split("_")[0]
    c.local_features = True
    c.init_state = "zeros"
    c.feed_context = False
    c.attention_query = "after"
    c.alpha_c = 0.0
    c.entropy_penalty = 0.02
    if c.mode == "hard":
      c.reinforce_reward = "to_go"
    else:
      c.num_steps = 4500      # still improving at 3,000 (docs); ~18 min on 2 cores
  elif preset == "smoke":
    c.data_config = "tiny"
    c.hidden_size = 16
    c.embed_size = 8
    c.channels = (4, 8, 8, 8)  # an 8x8 map: 64 locations, as the default
    c.batch_size = 8
    c.num_steps = 6
    c.log_every = 2
    c.eval_every = 3
    c.eval_batches = 1
    c.checkpoint_every = 3
    c.beam_size = 2
  else:
    raise UserError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
  return c
