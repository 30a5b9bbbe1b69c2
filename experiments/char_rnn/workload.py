"""The char-rnn glue: config -> model, data and loss for the training loop.

``char_rnn(config)``: a character-level language model trained with
char-rnn's stateful truncated BPTT; ``make_char_lm`` and ``make_sampler``
are shared with the sample binary and the benchmark.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnn_zoo import checks
from rnn_zoo import decoding
from rnn_zoo.data import text as text_lib
from rnn_zoo.errors import UserError
from rnn_zoo.models.char_lm import CharLM
from rnn_zoo.training.loop import Workload

CHAR_RNN_SHAPE_FIELDS = ("corpus", "max_chars", "val_fraction", "val_block", "cell", "hidden_size",
                         "num_layers", "embed_size", "gru_variant", "batch_size")


def make_char_lm(config, vocab_size: int) -> CharLM:
  """The char-rnn model a config describes (``embed_size`` 0: one-hot)."""
  common.check_cell_fields(config)
  checks.int_at_least("config.embed_size", config.embed_size, 0, "0: one-hot")
  return CharLM(vocab_size=vocab_size, cell=common.make_cell(config),
                num_layers=config.num_layers, embed_size=config.embed_size or None,
                dropout_rate=config.dropout_rate, cudnn=config.cudnn)


def check_prime(prime, name: str = "prime") -> None:
  if not isinstance(prime, str) or not prime:
    raise UserError(f"{name} must be a non-empty string, got {prime!r}")


def make_sampler(lm: CharLM, vocab: text_lib.Vocab, *, length: int,
                 temperature: float, top_k: int = 0):
  """``(params, prime: str, key, num_samples=1) -> list[str]``: the prime's
  continuations, generated in one jit-compiled scan per call. ``<unk>`` is
  never generated (its logit is masked): it stands for characters the
  training text lacks, so it has no spelling to print."""
  decoding.check_options(temperature, top_k, length)

  def step(params, carry, tokens):
    carry, logits = lm.step(params, carry, tokens)
    return carry, logits.at[:, 0].set(-jnp.inf)

  @jax.jit
  def gen(params, prompt, key):
    carry = lm.initial_carry(prompt.shape[0])
    return decoding.generate(step, params, carry, prompt, length=length, key=key,
                             temperature=temperature, top_k=top_k)[0]

  def sample(params, prime, key, num_samples=1):
    check_prime(prime)
    prompt = jnp.asarray(np.tile(vocab.encode(prime)[None], (num_samples, 1)))
    toks = np.asarray(gen(params, prompt, key))
    return [vocab.decode(row) for row in toks]
  return sample


def _stream_split(ids, config, name: str, n_chars: int):
  try:
    return text_lib.stream_windows(ids, config.batch_size, config.seq_len)
  except ValueError:
    raise UserError(
        f"the {name} split ({n_chars:,} characters; config.val_fraction="
        f"{config.val_fraction}) is too short for config.batch_size="
        f"{config.batch_size} streams of at least one config.seq_len="
        f"{config.seq_len} window: use a longer corpus or smaller values") from None


def char_rnn(config) -> Workload:
  """Character-level language modelling as char-rnn does it.

  The corpus (``config.corpus``: an embedded name or a file; cut to
  ``config.max_chars`` when > 0) is split into train and ``val_fraction``
  for validation (every k-th block of ``val_block`` characters, or the tail
  when ``val_block`` is 0: :func:`rnn_zoo.data.text.split`); the vocabulary is built from the training
  text (``<unk>`` for the rest) and saved beside every checkpoint. Each split
  is cut into ``batch_size`` contiguous streams; batch s is window
  ``s mod n`` of every stream. With ``config.stateful`` the final carry of a
  window is the initial carry of the next (the gradient stopped there), reset
  to zeros when the streams start over; otherwise every window starts from
  zeros. Loss: cross-entropy in nats/char, also logged as bits/char.
  """
  for field in ("seq_len", "batch_size"):
    checks.positive_int(f"config.{field}", config[field])
  text, description = text_lib.get_corpus(config.corpus, config.max_chars)
  train_text, val_text = text_lib.split(text, config.val_fraction, config.val_block)
  vocab = text_lib.Vocab.build(train_text)
  tr_in, tr_tg = _stream_split(vocab.encode(train_text), config, "training", len(train_text))
  va_in, va_tg = _stream_split(vocab.encode(val_text), config, "validation", len(val_text))
  lm = make_char_lm(config, vocab.size)
  B, stateful = config.batch_size, bool(config.stateful)
  n_train, n_val = tr_in.shape[0], va_in.shape[0]
  tr_in, tr_tg, va_in, va_tg = map(jnp.asarray, (tr_in, tr_tg, va_in, va_tg))
  sampler = make_sampler(lm, vocab, length=config.sample_length,
                         temperature=config.sample_temperature,
                         top_k=config.sample_top_k)
  check_prime(config.sample_prime, "config.sample_prime")

  def windows(inputs, targets, k, n):
    k = k % n
    reset = (k == 0) | (not stateful)
    return {"inputs": inputs[k], "targets": targets[k],
            "reset": jnp.broadcast_to(reset, (B,))}

  def loss_fn(params, batch, key, train, carry):
    reset = batch["reset"]
    carry = jax.tree.map(
        lambda c: jnp.where(reset.reshape((-1,) + (1,) * (c.ndim - 1)), 0, c), carry)
    return lm.loss(params, batch["inputs"], batch["targets"], carry, key=key,
                   deterministic=not train)

  def param_groups(grads):
    return {"embed_head": {k: v for k, v in grads.items() if k != "stack"},
            **{f"layer_{i}": grads["stack"][f"layer_{i}"]
               for i in range(config.num_layers)}}

  return Workload(
      init_params=lambda key: lm.init(key=key),
      loss_fn=loss_fn,
      train_batch=lambda key, step: windows(tr_in, tr_tg, step, n_train),
      eval_batch=lambda key, i: windows(va_in, va_tg, i, n_val),
      shape_fields=CHAR_RNN_SHAPE_FIELDS,
      vocab=vocab.to_json(),
      param_groups=param_groups,
      init_carry=lm.initial_carry,
      eval_batches=n_val,
      sample=lambda params, key: sampler(params, config.sample_prime, key)[0],
      info={"corpus": description, "train_chars": len(train_text),
            "val_chars": len(val_text), "vocab_size": vocab.size,
            "train_windows_per_epoch": n_train, "val_windows": n_val})
