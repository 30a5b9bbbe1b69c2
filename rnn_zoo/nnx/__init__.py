"""Flax NNX modules on the zoo's cells, runner and models.

:class:`RNN` (any cell or stack, lengths, reverse, ``impl=``, remat, hidden
probes), :class:`Bidirectional`, and the models as modules (:class:`Model`
for any model of the zoo's protocol; :class:`CharLM`, :class:`Captioner`,
:class:`VQA`). Each holds the functional params, one :class:`flax.nnx.Param`
per array, and computes what the functional call computes with them, bit
for bit; ``to_params()`` / ``from_params(...)`` convert each way, and
:meth:`RNN.to_linen` / :meth:`RNN.from_linen` to and from
:class:`rnn_zoo.nn.RNN`.

  >>> import jax.numpy as jnp, rnn_zoo as rz
  >>> from flax import nnx
  >>> layer = rz.nnx.RNN(rz.LSTM(32), 8, rngs=nnx.Rngs(0))
  >>> layer(jnp.zeros((4, 20, 8))).shape
  (4, 20, 32)
"""

from rnn_zoo.nnx.models import VQA, Captioner, CharLM, Model
from rnn_zoo.nnx.params import to_arrays, to_variables
from rnn_zoo.nnx.recurrent import RNN, Bidirectional

__all__ = ["RNN", "Bidirectional", "Model", "CharLM", "Captioner", "VQA",
           "to_arrays", "to_variables"]
