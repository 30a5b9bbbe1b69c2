"""Config for visual question answering (Sort-of-CLEVR, CLEVR-format data).

Launch:
  python -m experiments.vqa --workdir=/tmp/vqa_attention \
      --config=experiments/vqa/config.py:attention
  python -m experiments.vqa --workdir=/tmp/vqa_concat --config=experiments/vqa/config.py:concat
Presets: "" and "attention" (stacked attention, 2 hops), "concat" (CNN+MLP),
"product", "relation" (relation network), "smoke" (seconds: tiny data, a
few steps). Same budget and optimizer for every fusion. Data: Sort-of-CLEVR
generated and prepared into data_dir on first use, or CLEVR-format question
files (dataset="clevr").
"""

import ml_collections

from experiments import common
from rnn_zoo.errors import UserError

PRESETS = ("", "attention", "concat", "product", "relation", "smoke")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Seeds init and data order.
  # Data.
  c.dataset = "sort_of_clevr"  # sort_of_clevr (generated) | clevr (CLEVR-format files)
  c.data_config = "default"   # sort_of_clevr: default (9,800 train images) | tiny
  c.data_dir = ""             # tfds data dir ('': ~/.cache/rnn_zoo/tfds).
  c.clevr_train = ""          # clevr: CLEVR_train_questions.json.
  c.clevr_val = ""            # clevr: CLEVR_val_questions.json.
  c.clevr_train_images = ""   # clevr: the folder of the training images.
  c.clevr_val_images = ""     # clevr: the folder of the validation images.
  c.image_size = 75           # Images are S x S (clevr: resized).
  c.by_image = True           # sort_of_clevr: a batch is batch_size images with all
                              # 20 of their questions (the CNN reads each image once);
                              # False (and clevr): batch_size questions, one image each.
  c.max_question_length = 48  # clevr: words per question at most.
  # Model (cell block: experiments/common.py).
  c.fusion = "attention"      # concat | product | attention | relation
  common.add_cell_fields(c, hidden_size=64)
  c.bidirectional = False     # Read the question both ways.
  c.embed_size = 32           # Question word embedding size.
  c.channels = (24, 24, 24, 24)  # CNN channels per block (all stride 2: 75 -> 5x5).
  c.skip = True               # Append the CNN's first block, max-pooled over each
                              # region (what binds a question's colour; docs/vqa.md).
  c.fusion_size = 128         # product / attention: the common size.
  c.hops = 2                  # attention: hops (1 or 2).
  c.mlp_size = 256            # The answer MLP's width (relation: f's).
  c.g_layers = 3              # relation: layers of g.
  c.g_size = 256              # relation: g's width (runs on all 25x25 region pairs).
  c.g_pool = "sum"            # relation: "sum" (the paper's) or "mean" over the pairs.
  # Optimization, logging, checkpoints (experiments/common.py).
  common.add_training_fields(c, batch_size=16, num_steps=8000, learning_rate=1e-3,
                             clip_norm=5.0, eval_every=500)
  c.eval_batches = 8          # Validation batches for the loss during training.
  c.figure_questions = 2      # attention: questions drawn per subtype in the report.

  if preset in (None, "", "attention"):
    pass
  elif preset in ("concat", "product"):
    c.fusion = preset
  elif preset == "relation":
    # g runs on all 625 region pairs of every question, so a step of the
    # relation network costs several of the others'. It needs more scenes
    # than they do before it binds the question's colour to an object: three
    # seeds sat at the others' early plateau (~0.61 non-relational) for
    # 10,000-13,000 steps of 4 scenes (4-5 epochs), then left it and ended
    # at 0.994 non-relational, 0.789 relational (docs/vqa.md).
    # So: a narrow g (2 x 64), 4 scenes a step, g averaged over the pairs
    # (the paper's sum starts the logits in the hundreds), and as many steps
    # as 18 minutes of this machine allow, at most 30,000 (the cap binds on
    # the project's AVX-512 2-core VM: 13.8-16.1 minutes a run with the test
    # split; a machine 3x slower plans ~10,000 steps and ends on the plateau).
    c.fusion = "relation"
    c.g_size = 64
    c.g_layers = 2
    c.g_pool = "mean"
    c.batch_size = 4
    c.num_steps = 30_000
    c.time_budget_minutes = 18.0
  elif preset == "smoke":
    c.data_config = "tiny"
    c.hidden_size = 16
    c.embed_size = 8
    c.channels = (4, 4, 4, 4)
    c.fusion_size = 16
    c.mlp_size = 16
    c.g_size = 16
    c.batch_size = 4
    c.num_steps = 6
    c.log_every = 2
    c.eval_every = 3
    c.eval_batches = 1
    c.checkpoint_every = 3
  else:
    raise UserError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
  return c
