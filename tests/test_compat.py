"""Names that moved stay importable from their old module for one release,
with a DeprecationWarning naming the new place (rnn_zoo.compat)."""

import importlib

import pytest

MOVED = [
    ("rnn_zoo.cells.attention", "reinforce_surrogate", "rnn_zoo.models.attention_losses"),
    ("rnn_zoo.cells.attention", "doubly_stochastic_penalty", "rnn_zoo.models.attention_losses"),
    ("rnn_zoo.cells.attention", "rewards_to_go", "rnn_zoo.models.attention_losses"),
    ("rnn_zoo.cells.attention", "location_log_probs", "rnn_zoo.models.attention_losses"),
    ("rnn_zoo.nn.encoders", "mass_on_mask", "rnn_zoo.metrics.attention_maps"),
    ("rnn_zoo.nn.encoders", "upsample_attention", "rnn_zoo.metrics.attention_maps"),
    ("rnn_zoo.nn.encoders", "pixel_locations", "rnn_zoo.metrics.attention_maps"),
    ("rnn_zoo.data.shapes", "attention_pointing", "rnn_zoo.metrics.attention_maps"),
    ("rnn_zoo.data.shapes", "upsample_attention", "rnn_zoo.metrics.attention_maps"),
    ("rnn_zoo.data.shapes", "tokenize", "rnn_zoo.data.shape_language"),
    ("rnn_zoo.data.shapes", "parse", "rnn_zoo.data.shape_language"),
    ("rnn_zoo.data.shapes", "caption_truth", "rnn_zoo.data.shape_language"),
    ("rnn_zoo.data.shapes", "object_words", "rnn_zoo.data.shape_language"),
    ("rnn_zoo.decoding", "diversity", "rnn_zoo.metrics.text"),
    ("rnn_zoo.decoding", "distinct_ngrams", "rnn_zoo.metrics.text"),
    ("rnn_zoo.decoding", "loop_period", "rnn_zoo.metrics.text"),
    ("rnn_zoo.decoding", "repeated_substring_rate", "rnn_zoo.metrics.text"),
]


@pytest.mark.parametrize("old,name,new", MOVED)
def test_a_moved_name_warns_and_is_the_new_object(old, name, new):
  with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated .* use {new}\.{name}"):
    got = getattr(importlib.import_module(old), name)
  assert got is getattr(importlib.import_module(new), name)


def test_an_unknown_name_is_still_an_attribute_error():
  with pytest.raises(AttributeError, match="module 'rnn_zoo.decoding' has no attribute 'nope'"):
    importlib.import_module("rnn_zoo.decoding").nope  # pylint: disable=expression-not-assigned
