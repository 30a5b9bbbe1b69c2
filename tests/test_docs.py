"""The runnable examples in the docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["rnn_zoo", "rnn_zoo.cells.simple_rnn", "rnn_zoo.cells.lstm",
           "rnn_zoo.cells.gru", "rnn_zoo.recurrence", "rnn_zoo.nn.recurrent",
           "rnn_zoo.interop", "rnn_zoo.decoding", "rnn_zoo.models.sequence",
           "rnn_zoo.models.char_lm"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0, f"{name} has no runnable example"
  assert result.failed == 0
