"""Autoregressive generation as one jit-compiled ``lax.scan``.

Works with any model exposed as a step function
``step_fn(params, carry, tokens[B]) -> (carry, logits[B, V])``: a char-level
language model, a captioning decoder (with ``<START>``/``<END>``), ...

* ``temperature > 0``: sample from ``softmax(logits / temperature)``;
  ``temperature == 0``: argmax (greedy). Sampling keeps the output diverse
  where argmax tends to loop.
* ``top_k``: sample among the k most likely tokens only (0: all).
* ``end_token``: once a sequence emits it, every later token is ``end_token``
  and its carry stops changing.

:func:`generate_loop` is the same computation as a Python loop over a jitted
step (the reference, and the baseline the sampling benchmark compares with).
"""

from __future__ import annotations

import typing
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from rnn_zoo import checks
from rnn_zoo import compat
from rnn_zoo.errors import UserError

Array = jax.Array
StepFn = Callable[[Any, Any, Array], tuple[Any, Array]]


def check_options(temperature: Any, top_k: Any, length: Any) -> None:
  """The sampling options; each error names the option and the value."""
  try:
    ok = not isinstance(temperature, (bool, str)) and temperature >= 0
  except TypeError:
    ok = False
  if not ok:
    raise UserError(f"temperature must be >= 0 (0: argmax), got {temperature!r}")
  checks.int_at_least("top_k", top_k, 0, "0: no limit")
  checks.positive_int("length", length)


def _check(temperature, top_k, length, prompt):
  check_options(temperature, top_k, length)
  if getattr(prompt, "ndim", None) != 2 or prompt.shape[1] < 1:
    raise UserError(
        f"prompt must be int [batch, length >= 1], got shape {getattr(prompt, 'shape', None)}")
  if not jnp.issubdtype(prompt.dtype, jnp.integer):
    raise UserError(f"prompt must hold integer token ids, got dtype {prompt.dtype}")


def _check_against_model(step_fn, params, carry, prompt, top_k, end_token) -> int:
  """Checks the prompt, carry, ``top_k`` and ``end_token`` against what the
  step function gives (its shapes only); returns the vocabulary size V."""
  B = prompt.shape[0]
  for leaf in jax.tree.leaves(carry):
    if getattr(leaf, "ndim", 0) < 1 or leaf.shape[0] != B:
      raise UserError(
          f"carry and prompt disagree on the batch: prompt has {B} rows, the "
          f"carry has a leaf of shape {tuple(getattr(leaf, 'shape', ()))}")
  try:
    out = jax.eval_shape(step_fn, params, carry, prompt[:, 0].astype(jnp.int32))
  except UserError:
    raise
  logits = out[1]
  if logits.ndim != 2 or logits.shape[0] != B:
    raise UserError(f"step_fn must return logits [batch={B}, vocab], got shape "
                    f"{tuple(logits.shape)}")
  V = int(logits.shape[-1])
  if top_k > V:
    raise UserError(f"top_k must be at most the vocabulary size {V}, got {top_k}")
  if end_token is not None and not 0 <= end_token < V:  # pylint: disable=superfluous-parens
    raise UserError(f"end_token must lie in [0, vocab={V}), got {end_token}")
  checks.ids_in_range("prompt token ids", prompt, V, "vocab")
  return V


def choose(logits: Array, key: Array, temperature: float, top_k: int = 0) -> Array:
  """One token per row of ``logits`` ``[B, V]`` (see the module doc)."""
  noise = None if temperature == 0 else jax.random.gumbel(key, logits.shape, jnp.float32)
  return _pick(logits, noise, temperature, top_k)


def _pick(logits: Array, noise: Array | None, temperature: float, top_k: int) -> Array:
  """The Gumbel-max trick: ``argmax(logits / T + g)`` with g ~ Gumbel(0, 1)
  is a sample of ``softmax(logits / T)`` (what ``jax.random.categorical``
  does), here with the noise given, so that it can be drawn ahead.
  Temperature 0 is argmax (no noise).

  A row whose logits hold NaN (a model fed an invalid token id under
  ``jit``, :func:`rnn_zoo.checks.take_rows`) gives the token -1, which no
  vocabulary holds, instead of a valid-looking 0; fed back, it keeps the
  row's logits NaN."""
  bad = jnp.any(jnp.isnan(logits), axis=-1)
  if temperature == 0:
    return jnp.where(bad, -1, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if noise is not None:
    logits = logits + noise
  return jnp.where(bad, -1, jnp.argmax(logits, axis=-1)).astype(jnp.int32)


# generate() draws the sampling noise of every step before its scan (one
# vectorized RNG call instead of one per step) while it takes at most this
# many bytes; beyond, each step draws its own.
NOISE_AHEAD_BYTES = 64 * 2**20


def _step_noise(key, i, shape):
  return jax.random.gumbel(jax.random.fold_in(key, i), shape, jnp.float32)


def _decode_step(step_fn: StepFn, params, key, temperature, top_k, end_token):
  """``(carry, token, step index, done, noise) -> (carry, next token, done)``;
  ``noise`` is the step's Gumbel noise ``[B, V]``, or None to draw it here
  (the same values either way: both come from ``fold_in(key, i)``)."""

  def one(c, tok, i, done, noise=None):
    new_c, logits = step_fn(params, c, tok)
    if noise is None and temperature > 0:
      noise = _step_noise(key, i, logits.shape)
    nxt = _pick(logits, noise, temperature, top_k)
    if end_token is not None:
      # A finished sequence repeats end_token and keeps its carry.
      nxt = jnp.where(done, end_token, nxt)
      new_c = jax.tree.map(
          lambda n, o: jnp.where(done.reshape(done.shape + (1,) * (n.ndim - 1)), o, n),
          new_c, c)
      done = done | (nxt == end_token)
    return new_c, nxt, done
  return one


def prime(step_fn: StepFn, params: Any, carry: Any, prompt: Array) -> Any:
  """Feeds ``prompt[:, :-1]`` (teacher forcing) and returns the carry."""
  if prompt.shape[1] == 1:
    return carry

  def body(c, tok):
    c, _ = step_fn(params, c, tok)
    return c, None
  carry, _ = jax.lax.scan(body, carry, jnp.swapaxes(prompt[:, :-1], 0, 1))
  return carry


def generate(step_fn: StepFn, params: Any, carry: Any, prompt: Array, *, length: int,
             key: Array, temperature: float = 1.0, top_k: int = 0,
             end_token: int | None = None) -> tuple[Array, Any]:
  """Continues ``prompt`` by ``length`` tokens.

  Args:
    step_fn: ``(params, carry, tokens[B]) -> (carry, logits[B, V])``.
    params: the model's params.
    carry: the carry before the prompt (e.g. zeros).
    prompt: int ``[B, P]``, P >= 1: the priming tokens (``<START>`` alone for
      a captioner); its last token is the first one fed while generating.
    length: tokens to generate.
    key: PRNG key (one subkey per step via ``fold_in``; the same key gives
      the same sample).
    temperature: 0 for argmax, else the softmax temperature.
    top_k: restrict sampling to the k most likely tokens (0: no limit).
    end_token: stop a sequence once it emits this token.

  Returns:
    ``(tokens [B, length] int32, final carry)``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnn_zoo import decoding
    >>> table = jnp.eye(3)[jnp.array([1, 2, 0])] * 10.0   # token t -> t + 1 mod 3
    >>> step = lambda p, c, tok: (c, p[tok])
    >>> toks, _ = decoding.generate(step, table, (), jnp.array([[0]]), length=5,
    ...                             key=jax.random.key(0), temperature=0)
    >>> toks.tolist()
    [[1, 2, 0, 1, 2]]
  """
  _check(temperature, top_k, length, prompt)
  V = _check_against_model(step_fn, params, carry, prompt, top_k, end_token)
  carry = prime(step_fn, params, carry, prompt)
  B = prompt.shape[0]
  first = prompt[:, -1].astype(jnp.int32)

  one = _decode_step(step_fn, params, key, temperature, top_k, end_token)
  steps = jnp.arange(length)
  noise = None
  if temperature > 0:
    if length * B * V * 4 <= NOISE_AHEAD_BYTES:
      noise = jax.vmap(lambda i: _step_noise(key, i, (B, V)))(steps)

  def body(state, xs):
    i, g = xs
    c, tok, done = one(*state[:2], i, state[2], g)
    return (c, tok, done), tok

  (carry, _, _), toks = jax.lax.scan(
      body, (carry, first, jnp.zeros((B,), bool)), (steps, noise))
  return jnp.swapaxes(toks, 0, 1), carry


def generate_loop(step_fn: StepFn, params: Any, carry: Any, prompt: Array, *, length: int,
                  key: Array, temperature: float = 1.0, top_k: int = 0,
                  end_token: int | None = None) -> tuple[Array, Any]:
  """:func:`generate` as a Python loop over a jitted step (reference)."""
  _check(temperature, top_k, length, prompt)
  _check_against_model(step_fn, params, carry, prompt, top_k, end_token)
  B = prompt.shape[0]

  one = jax.jit(_decode_step(step_fn, params, key, temperature, top_k, end_token))
  step_jit = jax.jit(step_fn)
  for t in range(prompt.shape[1] - 1):
    carry, _ = step_jit(params, carry, prompt[:, t])
  tok, done, out = prompt[:, -1].astype(jnp.int32), jnp.zeros((B,), bool), []
  for i in range(length):
    carry, tok, done = one(carry, tok, i, done)
    out.append(tok)
  return jnp.stack(out, axis=1), carry


# --------------------------------------------------------------------------
# Beam search.

class BeamState(NamedTuple):
  """The state of a beam search over ``K`` beams for each of ``B`` rows:
  ``tokens`` ``[max_length, B, K]``, ``lengths`` ``[B, K]`` (see each field)."""
  carry: typing.Any        # the model's carry, rows [B * K] (beam k of row b at b*K + k)
  last: jax.Array       # [B, K] int32: each beam's last token (fed at the next step)
  logprob: jax.Array    # [B, K] float32: summed log-probabilities of the tokens
  done: jax.Array       # [B, K] bool: the beam has emitted ``end_token``
  tokens: jax.Array     # [max_length, B, K] int32: the token each beam took at step t
  parents: jax.Array    # [max_length, B, K] int32: the beam it continued (backpointers)
  lengths: jax.Array    # [B, K] int32: tokens generated, ``end_token`` included
  t: jax.Array          # int32: steps taken


# beam_search runs as one XLA loop, which Ctrl-C cannot stop: its length is
# bounded (beam_search_loop, a Python loop of jitted steps, is not).
MAX_BEAM_LENGTH = 65_536


def _check_beam(beam_size, max_length, end_token, length_penalty, prompt, bounded=True):
  checks.positive_int("beam_size", beam_size)
  checks.positive_int("max_length", max_length)
  if bounded and max_length > MAX_BEAM_LENGTH:
    raise UserError(f"max_length must be at most {MAX_BEAM_LENGTH:,} for beam_search "
                    f"(one uninterruptible loop), got {max_length:,}; "
                    "decoding.beam_search_loop takes longer ones")
  checks.int_at_least("end_token", end_token, 0)
  checks.number_at_least("length_penalty", length_penalty, 0.0)
  _check(0.0, 0, max_length, prompt)


def _beam_init(step_fn, params, carry, prompt, beam_size, max_length, end_token):
  carry = prime(step_fn, params, carry, prompt)
  B, K = prompt.shape[0], beam_size
  carry = jax.tree.map(lambda c: jnp.repeat(c, K, axis=0), carry)
  # Only beam 0 is alive at first, so the K beams do not start as copies.
  logprob = jnp.where(jnp.arange(K)[None, :] == 0, 0.0, -jnp.inf)
  return BeamState(
      carry=carry,
      last=jnp.broadcast_to(prompt[:, -1:].astype(jnp.int32), (B, K)),
      logprob=jnp.broadcast_to(logprob, (B, K)).astype(jnp.float32),
      done=jnp.zeros((B, K), bool),
      tokens=jnp.full((max_length, B, K), end_token, jnp.int32),
      parents=jnp.broadcast_to(jnp.arange(K, dtype=jnp.int32), (max_length, B, K)),
      lengths=jnp.zeros((B, K), jnp.int32),
      t=jnp.zeros((), jnp.int32))


def _beam_step(step_fn, params, state: BeamState, end_token: int) -> BeamState:
  """One step: every beam's continuations, the K most likely kept per row.

  A finished beam has one continuation, ``end_token``, at no cost: it keeps
  its score and stays in the running against the live ones.
  """
  B, K = state.last.shape
  new_carry, logits = step_fn(params, state.carry, state.last.reshape(B * K))
  V = logits.shape[-1]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(B, K, V)
  ended = jnp.where(jnp.arange(V) == end_token, 0.0, -jnp.inf)
  logp = jnp.where(state.done[..., None], ended, logp)
  scores = (state.logprob[..., None] + logp).reshape(B, K * V)
  top, idx = jax.lax.top_k(scores, K)                     # [B, K]
  beam, token = idx // V, (idx % V).astype(jnp.int32)
  rows = (jnp.arange(B)[:, None] * K + beam).reshape(B * K)
  take = lambda a: jnp.take_along_axis(a, beam, axis=1)
  was_done = take(state.done)
  # The step's tokens and backpointers only (the prefixes are read back at
  # the end): each step costs the same, whatever the length.
  write = lambda buf, v: jax.lax.dynamic_update_slice_in_dim(
      buf, v[None].astype(jnp.int32), state.t, axis=0)
  return BeamState(
      carry=jax.tree.map(lambda c: c[rows], new_carry),
      last=token, logprob=top, done=was_done | (token == end_token),
      tokens=write(state.tokens, token), parents=write(state.parents, beam),
      lengths=take(state.lengths) + (~was_done).astype(jnp.int32), t=state.t + 1)


def _backtrack(state: BeamState) -> Array:
  """``[B, K, max_length]``: each final beam's tokens, read back through the
  backpointers from the last step (steps not taken hold ``end_token`` and
  point to the same beam)."""
  B, K = state.last.shape

  def back(beam, t):
    tok = jnp.take_along_axis(state.tokens[t], beam, axis=1)
    return jnp.take_along_axis(state.parents[t], beam, axis=1), tok

  start = jnp.broadcast_to(jnp.arange(K, dtype=jnp.int32), (B, K))
  _, toks = jax.lax.scan(back, start, jnp.arange(state.tokens.shape[0])[::-1])
  return jnp.moveaxis(toks[::-1], 0, -1)


def _beam_finish(state: BeamState, length_penalty: float):
  """Ranks each row's beams by ``logprob / length ** length_penalty``."""
  norm = jnp.maximum(state.lengths, 1).astype(jnp.float32) ** length_penalty
  score = jnp.where(jnp.isfinite(state.logprob), state.logprob / norm, -jnp.inf)
  order = jnp.argsort(-score, axis=1)
  take = lambda a: jnp.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
  return {"tokens": take(_backtrack(state)), "scores": take(score),
          "logprobs": take(state.logprob), "lengths": take(state.lengths),
          "steps": state.t}


def beam_search(step_fn: StepFn, params: Any, carry: Any, prompt: Array, *, beam_size: int,
                max_length: int, end_token: int, length_penalty: float = 0.0
                ) -> dict[str, Array]:
  """Beam search as one ``lax.while_loop``, for a batch of prompts.

  Each row keeps the ``beam_size`` most likely prefixes (by summed
  log-probability) at every step; the loop stops when every beam of every
  row has emitted ``end_token``, or after ``max_length`` tokens. The final
  beams are ranked by ``logprob / length ** length_penalty`` (Wu et al. 2016's
  length normalization with exponent alpha; 0 ranks by log-probability). With
  ``beam_size=1`` it is greedy decoding, token for token.

  Args:
    step_fn: ``(params, carry, tokens[N]) -> (carry, logits[N, V])``.
    params: the model's params.
    carry: the carry before the prompt, batch ``B``.
    prompt: int ``[B, P]``, P >= 1 (``<START>`` alone for a captioner).
    beam_size: K, in ``[1, V]``.
    max_length: most tokens generated.
    end_token: the token that ends a sequence (``<END>``).
    length_penalty: alpha >= 0 of the final ranking.

  Returns:
    A dict, beams best first: ``tokens`` int32 ``[B, K, max_length]``
    (``end_token`` after the end), ``scores`` ``[B, K]`` (the ranking
    score), ``logprobs`` ``[B, K]``, ``lengths`` ``[B, K]`` (tokens up to
    and including ``end_token``), ``steps`` (loop iterations run).

  Each step costs the same whatever ``max_length`` (the beams' tokens are
  read back through backpointers at the end); ``max_length`` is at most
  :data:`MAX_BEAM_LENGTH` (:func:`beam_search_loop`, which Ctrl-C can
  stop, takes longer ones).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnn_zoo import decoding
    >>> table = jnp.log(jnp.array([[.1, .5, .4], [.4, .3, .3], [.8, .1, .1]]))
    >>> step = lambda p, c, tok: (c, p[tok])       # a bigram model; token 2 ends
    >>> out = decoding.beam_search(step, table, (), jnp.array([[0]]), beam_size=2,
    ...                            max_length=4, end_token=2)
    >>> out["tokens"][0, 0].tolist(), round(float(jnp.exp(out["logprobs"][0, 0])), 2)
    ([2, 2, 2, 2], 0.4)
    >>> greedy = decoding.beam_search(step, table, (), jnp.array([[0]]), beam_size=1,
    ...                               max_length=4, end_token=2)
    >>> greedy["tokens"][0, 0].tolist(), round(float(jnp.exp(greedy["logprobs"][0, 0])), 2)
    ([1, 0, 1, 0], 0.04)
  """
  _check_beam(beam_size, max_length, end_token, length_penalty, prompt)
  V = _check_against_model(step_fn, params, carry, prompt, 0, end_token)
  if beam_size > V:
    raise UserError(f"beam_size must be at most the vocabulary size {V}, got {beam_size}")
  state = _beam_init(step_fn, params, carry, prompt, beam_size, max_length, end_token)
  state = jax.lax.while_loop(
      lambda s: (s.t < max_length) & ~jnp.all(s.done),
      lambda s: _beam_step(step_fn, params, s, end_token), state)
  return _beam_finish(state, length_penalty)


def beam_search_loop(step_fn: StepFn, params: Any, carry: Any, prompt: Array, *,
                     beam_size: int, max_length: int, end_token: int,
                     length_penalty: float = 0.0) -> dict[str, Array]:
  """:func:`beam_search` as a Python loop over a jitted step (the reference,
  and the baseline of ``benchmarks/decoding.py``)."""
  _check_beam(beam_size, max_length, end_token, length_penalty, prompt, bounded=False)
  V = _check_against_model(step_fn, params, carry, prompt, 0, end_token)
  if beam_size > V:
    raise UserError(f"beam_size must be at most the vocabulary size {V}, got {beam_size}")
  state = jax.jit(_beam_init, static_argnums=(0, 4, 5, 6))(
      step_fn, params, carry, prompt, beam_size, max_length, end_token)
  one = jax.jit(lambda p, s: _beam_step(step_fn, p, s, end_token))
  while int(state.t) < max_length and not bool(jnp.all(state.done)):
    state = one(params, state)
  return _beam_finish(state, length_penalty)


# Moved to rnn_zoo.metrics.text (the diversity of generated text).
__getattr__ = compat.moved(__name__, {
    n: "rnn_zoo.metrics.text" for n in (
        "distinct_ngrams", "repeated_substring_rate", "loop_period", "diversity")})
