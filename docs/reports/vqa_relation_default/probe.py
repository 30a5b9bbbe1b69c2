"""Scratch probe behind docs/reports/vqa_relation_default: a VQA fusion
trained outside the training loop (Adam, clip 5, whole scenes) on
Sort-of-CLEVR, validation accuracy by subtype every --every steps, and
the variants tried on the relation network (--bits: the paper's 11-bit
question in place of the reader; --film: g's pair term scaled by
1 + W q; --ln: the pooled g normalized; --fq: f sees the question too).
Run from the repository root:

  python docs/reports/vqa_relation_default/probe.py --data=/tmp/soc --batch=4 --pool=mean --steps=6000
"""
import os, time, json, argparse
import numpy as np, jax, jax.numpy as jnp, optax
import rnn_zoo as rz
from rnn_zoo.data import sort_of_clevr as soc
p = argparse.ArgumentParser()
p.add_argument("--fusion", default="relation"); p.add_argument("--g_size", type=int, default=64)
p.add_argument("--g_layers", type=int, default=2); p.add_argument("--batch", type=int, default=8)
p.add_argument("--lr", type=float, default=1e-3); p.add_argument("--pool", default="sum")
p.add_argument("--steps", type=int, default=2000); p.add_argument("--every", type=int, default=250)
p.add_argument("--seed", type=int, default=0); p.add_argument("--extra", default="{}")
p.add_argument("--hidden", type=int, default=64); p.add_argument("--bits", type=int, default=0); p.add_argument("--film", type=int, default=0); p.add_argument("--ln", type=int, default=0); p.add_argument("--fq", type=int, default=0); p.add_argument("--mlp", type=int, default=256)
p.add_argument("--data", default="/tmp/soc")
a = p.parse_args()
os.makedirs(a.data, exist_ok=True)
for split, n in (("train", 9800), ("validation", 200)):      # the binary's splits, as arrays
  path = os.path.join(a.data, f"{split}.npz")
  if not os.path.exists(path):
    ss = [soc.make_scene(split, i) for i in range(n)]
    np.savez(path, image=np.stack([s.image for s in ss]), questions=np.stack([s.questions for s in ss]),
             answers=np.stack([s.answers for s in ss]), subtype=np.stack([s.subtype for s in ss]),
             bits=np.stack([s.bits for s in ss]))
tr = dict(np.load(os.path.join(a.data, "train.npz"))); va = dict(np.load(os.path.join(a.data, "validation.npz")))
class BitsVQA(rz.models.VQA):
  def read(self, params, questions):
    return questions
from rnn_zoo.models import vqa as vqa_mod
from rnn_zoo.cells import base
class FilmVQA(rz.models.VQA):
  def init(self, *, key):
    p = super().init(key=key)
    p["film"] = vqa_mod._dense(jax.random.fold_in(key, 7), self.question_size, self.g_size, scale=0.0)
    return p
  def fuse(self, params, regions, q):
    first, rest = params["g"][0], params["g"][1:]
    R = regions.shape[-1]
    w_i, w_j, w_q = first["w"][:R], first["w"][R:2 * R], first["w"][2 * R:]
    gam = 1.0 + base.affine(q, params["film"]["w"], params["film"]["b"])
    pre = (((regions @ w_i)[:, :, None, :] + (regions @ w_j)[:, None, :, :]) * gam[:, None, None, :]
           + (base.affine(q, w_q, first["b"]))[:, None, None, :])
    g = jax.nn.relu(pre)
    g = vqa_mod._mlp(rest, g, final_relu=True) if rest else g
    return self.pool_pairs(g, axis=(1, 2)), None
class LNVQA(rz.models.VQA):
  def fuse(self, params, regions, q):
    x, m = super().fuse(params, regions, q)
    x = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5)
    return x, m
class FqVQA(rz.models.VQA):
  def init(self, *, key):
    p = super().init(key=key)
    p["answer"] = vqa_mod._mlp_init(jax.random.fold_in(key, 9), [self.g_size + self.question_size, self.mlp_size, self.mlp_size, self.num_answers])
    return p
  def fuse(self, params, regions, q):
    x, m = super().fuse(params, regions, q)
    return jnp.concatenate([x, q], -1), m
Model = FqVQA if a.fq else LNVQA if a.ln else FilmVQA if a.film else (BitsVQA if a.bits else rz.models.VQA)
if a.bits: a.hidden = 11
model = Model(num_answers=len(soc.ANSWERS), question_vocab=len(soc.QUESTION_WORDS),
    cell=rz.LSTM(a.hidden), fusion=a.fusion, skip=True, g_size=a.g_size, g_layers=a.g_layers,
    g_pool=a.pool, mlp_size=a.mlp, **json.loads(a.extra))
params = model.init(key=jax.random.key(a.seed))
opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(a.lr))
st = opt.init(params)
@jax.jit
def step(params, st, img, q, ans):
  (l, m), g = jax.value_and_grad(model.loss, has_aux=True)(params, img, q, ans)
  u, st = opt.update(g, st, params)
  return optax.apply_updates(params, u), st, l, m["accuracy"], optax.global_norm(g)
@jax.jit
def pred(params, img, q):
  return jnp.argmax(model.apply(params, img, q)[0], -1)
def evaluate(params):
  P = []
  for i in range(0, 200, 20):
    P.append(np.asarray(pred(params, jnp.asarray(va["image"][i:i+20] / 255., jnp.float32), Q(va, slice(i, i+20)))))
  P = np.concatenate(P); ok = P == va["answers"]; kind = va["subtype"] // 3
  return ok[kind == 0].mean(), ok[kind == 1].mean(), [round(float(ok[va["subtype"] == s].mean()), 3) for s in range(6)]
def Q(d, i):
  return jnp.asarray(d["bits"][i]) if a.bits else jnp.asarray(d["questions"][i])
rng = np.random.default_rng(a.seed); order = rng.permutation(9800); pos = 0
t0 = time.time(); L = []           # losses stay on the device until an evaluation
for s in range(1, a.steps + 1):
  if pos + a.batch > 9800: order = rng.permutation(9800); pos = 0
  idx = np.sort(order[pos:pos + a.batch]); pos += a.batch
  params, st, l, _, gn = step(params, st, jnp.asarray(tr["image"][idx] / 255., jnp.float32), Q(tr, idx), jnp.asarray(tr["answers"][idx]))
  L.append(l)
  if s % a.every == 0:
    nr, r, sub = evaluate(params)
    print(f"step {s} t {time.time()-t0:.0f}s loss {float(jnp.mean(jnp.stack(L[-a.every:]))):.3f} gn {float(gn):.2f} nonrel {nr:.3f} rel {r:.3f} {sub}", flush=True)
