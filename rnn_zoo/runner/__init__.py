"""The one runner over time, and what is built on it.

* :func:`unroll` runs any cell over a sequence (lengths, length-aware
  reversal, resets, gradient checkpointing, zero "probes" on the hidden
  state for ``dL/dh_t``); :func:`unroll_with_carries` also returns the carry
  after every step. ``impl=`` picks the implementation ("auto", "scan",
  "fused", "native", "cudnn", "parallel", "parallel_log");
  :func:`explain_impl` says which one runs a call and why.
* :func:`python_unroll` computes the same as a plain Python loop over
  ``cell.step``, sharing no code with the runner: the reference.
* :func:`bidirectional`, :class:`StackedRNN` and :func:`truncated_bptt` build
  on :func:`unroll`.

Layout: ``inputs`` (validation, once), ``select`` (the pure choice of
implementation), one module per implementation (``scan``, ``fused``,
``native``, ``cudnn``, ``parallel``; each ``run(cell, params, prepared) ->
(ys, final_carry, carries)``), ``api`` (the public functions),
``reference`` and ``stack``.
"""

from rnn_zoo.runner.api import explain_impl, unroll, unroll_with_carries
from rnn_zoo.runner.inputs import reverse_within_lengths
from rnn_zoo.runner.reference import python_unroll, python_unroll_with_carries
from rnn_zoo.runner.select import IMPLS, Choice, Platform, Request, select_impl
from rnn_zoo.runner.stack import MERGES, StackedRNN, bidirectional, truncated_bptt

__all__ = [
    "unroll", "unroll_with_carries", "explain_impl", "select_impl", "IMPLS",
    "Choice", "Platform", "Request", "python_unroll",
    "python_unroll_with_carries", "reverse_within_lengths", "StackedRNN",
    "bidirectional", "truncated_bptt", "MERGES",
]
