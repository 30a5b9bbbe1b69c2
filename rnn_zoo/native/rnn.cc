// The LSTM and GRU recurrences as XLA:CPU custom calls (jax.ffi), float32.
// (The comments below describe the LSTM; the GRU's kernels, further down,
// are the same with 3 gate blocks and its own pointwise part.)
//
// What XLA's scan cannot express and oneDNN's (PyTorch's) CPU RNN kernel
// does: the recurrent weight is packed once per call into the layout the
// inner product reads, and each step's gates are finished in registers, with
// no [B, 4H] intermediate written out and read back:
//
//   forward, step t:  z = x_t W_ih + h_{t-1} W_hh   (B x 4H, computed 16
//                     hidden units x 4 gates x up to 6 rows at a time;
//                     or z = xp_t + h_{t-1} W_hh over a given projection)
//                     i, f, g, o = act(z);  c_t = f c_{t-1} + i g;
//                     h_t = o tanh(c_t)       -- all in registers
//   backward, step t: dz_t from dh_t, dc_t and the saved activations;
//                     dh_{t-1} = dz_t W_hh^T
//
// The hidden units are split into contiguous groups of 16 between threads:
// each thread computes every gate of its own units, so a step needs one
// barrier (h_t, or dz_t, must be complete before the next step reads it).
// The threads are the calling thread and tasks on XLA's own intra-op pool
// (no second pool competing with XLA's for the cores: with OpenMP, every
// XLA thread that made the call got its own OpenMP workers, two of them
// sometimes on one core, and a step's barrier then waited a time slice).
// The LSTM's input projection x_t W_ih runs in the same tiles (its packed
// weight beside W_hh's), so no [T, B, 4H] projection is written to memory
// and read back. The weight gradients (dW_ih, dW_hh = sum_t h_{t-1}^T dz_t,
// db) are one GEMM over all the steps' rows (weight_grads, below), and the
// LSTM's dx = dz W_ih^T runs in its backward kernel beside dz_t W_hh^T; the
// GRU's xp = x W_ih and its dx stay XLA GEMMs outside
// (rnn_zoo/native/__init__.py).
//
// Layouts (row-major): w_hh [H, 4H] with gate blocks i, f, g, o of H
// columns (rnn_zoo.LSTM's), w_ih [I, 4H] likewise; x, xp and ys [T, B, *]
// or, batch_major, the caller's [B, T, *]; the saved activations and c
// [T, B, *]; h, c [B, H].
//
// Vectors are GCC vector extensions of 16 floats, so the file compiles for
// any x86-64 target (-march=native picks AVX-512 or 2 x AVX2); exp is
// Cephes' polynomial (about 2 ulp), sigmoid(z) = 1 / (1 + exp(-z)) with 1/x
// by AVX-512's estimate and a Newton step,
// tanh(z) = 2 sigmoid(2z) - 1.

#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

#include "simd.h"
#include "team.h"
#include "pack.h"
#include "lstm.h"
#include "weight_grads.h"
#include "gru.h"

namespace {

struct Dims {
  int64_t T, B, H;
};

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

// w_hh [H, 4H]; xp [T, B, 4H] or (batch_major) [B, T, 4H]; h0, c0 [B, H].
ffi::Error check(const F32& w, const F32& xp, const F32& h0, const F32& c0,
                 bool batch_major, Dims* d, int gates = 4) {
  auto wd = w.dimensions(), xd = xp.dimensions(), hd = h0.dimensions(),
       cd = c0.dimensions();
  if (wd.size() != 2 || wd[1] != gates * wd[0])
    return ffi::Error::InvalidArgument("w_hh must be [H, G*H] (G gates)");
  d->H = wd[0];
  if (xd.size() != 3 || xd[2] != gates * d->H)
    return ffi::Error::InvalidArgument("xp must be [T, B, G*H] or [B, T, G*H]");
  d->T = batch_major ? xd[1] : xd[0];
  d->B = batch_major ? xd[0] : xd[1];
  if (hd.size() != 2 || hd[0] != d->B || hd[1] != d->H || cd.size() != 2 ||
      cd[0] != d->B || cd[1] != d->H)
    return ffi::Error::InvalidArgument("h0 and c0 must be [B, H]");
  return ffi::Error::Success();
}

// A vector operand of n floats (the kernels read exactly n: a shorter one
// would be read past its end).
ffi::Error check_vector(const F32& v, int64_t n, const char* what) {
  auto vd = v.dimensions();
  if (vd.size() != 1 || vd[0] != n) return ffi::Error::InvalidArgument(what);
  return ffi::Error::Success();
}

Schedule pool_schedule(ffi::ThreadPool& pool) {
  if (pool.num_threads() < 1) return nullptr;
  return [&pool](std::function<void()> task) { pool.Schedule(std::move(task)); };
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 xp, F32 h0, F32 c0,
                       bool batch_major, F32Out ys, F32Out c_last, F32Out cs,
                       F32Out acts, bool train) {
  Dims d;
  if (ffi::Error e = check(w, xp, h0, c0, batch_major, &d); e.failure()) return e;
  if (ffi::Error e = check_vector(b, 4 * d.H, "b must be [4H]"); e.failure()) return e;
  forward(w.typed_data(), b.typed_data(), xp.typed_data(), nullptr, 0, h0.typed_data(),
          c0.typed_data(), d.T, d.B, d.H, batch_major, ys->typed_data(),
          train ? cs->typed_data() : nullptr, train ? acts->typed_data() : nullptr,
          train ? nullptr : c_last->typed_data(), wanted_threads(pool.num_threads()),
          pool_schedule(pool));
  return ffi::Error::Success();
}

ffi::Error ForwardInferImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 xp, F32 h0, F32 c0,
                            bool batch_major, F32Out ys, F32Out c_last) {
  return ForwardImpl(pool, w, b, xp, h0, c0, batch_major, ys, c_last, c_last, c_last,
                     false);
}

ffi::Error ForwardTrainImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 xp, F32 h0, F32 c0,
                            bool batch_major, F32Out ys, F32Out cs, F32Out acts) {
  return ForwardImpl(pool, w, b, xp, h0, c0, batch_major, ys, cs, cs, acts, true);
}

// The fused projection: w_ih [I, 4H] and the inputs x [T, B, I] or
// (batch_major) [B, T, I] in place of xp.
ffi::Error FusedForwardImpl(ffi::ThreadPool pool, F32 w, F32 w_ih, F32 b, F32 x, F32 h0,
                            F32 c0, bool batch_major, F32Out ys, F32Out c_last,
                            F32Out cs, F32Out acts, bool train) {
  auto wd = w.dimensions(), id = w_ih.dimensions(), xd = x.dimensions();
  if (wd.size() != 2 || wd[1] != 4 * wd[0])
    return ffi::Error::InvalidArgument("w_hh must be [H, 4H]");
  if (id.size() != 2 || id[1] != wd[1])
    return ffi::Error::InvalidArgument("w_ih must be [I, 4H]");
  if (xd.size() != 3 || xd[2] != id[0])
    return ffi::Error::InvalidArgument("x must be [T, B, I] or [B, T, I]");
  Dims d{batch_major ? xd[1] : xd[0], batch_major ? xd[0] : xd[1], wd[0]};
  auto hd = h0.dimensions(), cd = c0.dimensions();
  if (hd.size() != 2 || hd[0] != d.B || hd[1] != d.H || cd.size() != 2 ||
      cd[0] != d.B || cd[1] != d.H)
    return ffi::Error::InvalidArgument("h0 and c0 must be [B, H]");
  if (ffi::Error e = check_vector(b, 4 * d.H, "b must be [4H]"); e.failure()) return e;
  forward(w.typed_data(), b.typed_data(), x.typed_data(), w_ih.typed_data(), id[0],
          h0.typed_data(), c0.typed_data(), d.T, d.B, d.H, batch_major, ys->typed_data(),
          train ? cs->typed_data() : nullptr, train ? acts->typed_data() : nullptr,
          train ? nullptr : c_last->typed_data(), wanted_threads(pool.num_threads()),
          pool_schedule(pool));
  return ffi::Error::Success();
}

ffi::Error FusedForwardInferImpl(ffi::ThreadPool pool, F32 w, F32 w_ih, F32 b, F32 x,
                                 F32 h0, F32 c0, bool batch_major, F32Out ys,
                                 F32Out c_last) {
  return FusedForwardImpl(pool, w, w_ih, b, x, h0, c0, batch_major, ys, c_last, c_last,
                          c_last, false);
}

ffi::Error FusedForwardTrainImpl(ffi::ThreadPool pool, F32 w, F32 w_ih, F32 b, F32 x,
                                 F32 h0, F32 c0, bool batch_major, F32Out ys, F32Out cs,
                                 F32Out acts) {
  return FusedForwardImpl(pool, w, w_ih, b, x, h0, c0, batch_major, ys, cs, cs, acts,
                          true);
}

// The LSTM's backward pass; with w_ih [I, 4H] (the layer's), dx too, into
// the layout of x.
ffi::Error BackwardImpl(ffi::ThreadPool pool, F32 w, const F32* w_ih, F32 acts, F32 cs,
                        F32 c0, F32 dys, F32 dhT, F32 dcT, bool batch_major, F32Out dz,
                        F32Out* dx, F32Out dh0, F32Out dc0) {
  Dims d;
  if (ffi::Error e = check(w, *dz, dhT, c0, batch_major, &d); e.failure())
    return e;
  int64_t I = 0;
  if (w_ih != nullptr) {
    auto id = w_ih->dimensions(), xd = (*dx)->dimensions();
    if (id.size() != 2 || id[1] != 4 * d.H)
      return ffi::Error::InvalidArgument("w_ih must be [I, 4H]");
    if (xd.size() != 3 || xd[0] != dz->dimensions()[0] || xd[1] != dz->dimensions()[1] ||
        xd[2] != id[0])
      return ffi::Error::InvalidArgument("dx must be [T, B, I] or [B, T, I], as dz");
    I = id[0];
  }
  backward(w.typed_data(), acts.typed_data(), cs.typed_data(), c0.typed_data(),
           dys.typed_data(), dhT.typed_data(), dcT.typed_data(), d.T, d.B, d.H,
           batch_major, dz->typed_data(), dh0->typed_data(), dc0->typed_data(),
           wanted_threads(pool.num_threads()), pool_schedule(pool),
           w_ih == nullptr ? nullptr : w_ih->typed_data(), I,
           w_ih == nullptr ? nullptr : (*dx)->typed_data());
  return ffi::Error::Success();
}

ffi::Error RecurrenceBackwardImpl(ffi::ThreadPool pool, F32 w, F32 acts, F32 cs, F32 c0,
                                  F32 dys, F32 dhT, F32 dcT, bool batch_major, F32Out dz,
                                  F32Out dh0, F32Out dc0) {
  return BackwardImpl(pool, w, nullptr, acts, cs, c0, dys, dhT, dcT, batch_major, dz,
                      nullptr, dh0, dc0);
}

ffi::Error LayerBackwardImpl(ffi::ThreadPool pool, F32 w, F32 w_ih, F32 acts, F32 cs,
                             F32 c0, F32 dys, F32 dhT, F32 dcT, bool batch_major,
                             F32Out dz, F32Out dx, F32Out dh0, F32Out dc0) {
  return BackwardImpl(pool, w, &w_ih, acts, cs, c0, dys, dhT, dcT, batch_major, dz, &dx,
                      dh0, dc0);
}

ffi::Error GruForwardImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 b_hn, F32 xp, F32 h0,
                          bool batch_major, F32Out ys, F32Out acts, bool train) {
  Dims d;
  if (ffi::Error e = check(w, xp, h0, h0, batch_major, &d, 3); e.failure()) return e;
  if (ffi::Error e = check_vector(b, 3 * d.H, "b must be [3H]"); e.failure()) return e;
  if (ffi::Error e = check_vector(b_hn, d.H, "b_hn must be [H]"); e.failure()) return e;
  gru_forward(w.typed_data(), b.typed_data(), b_hn.typed_data(), xp.typed_data(),
              h0.typed_data(), d.T, d.B, d.H, batch_major, ys->typed_data(),
              train ? acts->typed_data() : nullptr, wanted_threads(pool.num_threads()),
              pool_schedule(pool));
  return ffi::Error::Success();
}

ffi::Error GruForwardInferImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 b_hn, F32 xp,
                               F32 h0, bool batch_major, F32Out ys) {
  return GruForwardImpl(pool, w, b, b_hn, xp, h0, batch_major, ys, ys, false);
}

ffi::Error GruForwardTrainImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 b_hn, F32 xp,
                               F32 h0, bool batch_major, F32Out ys, F32Out acts) {
  return GruForwardImpl(pool, w, b, b_hn, xp, h0, batch_major, ys, acts, true);
}

ffi::Error GruBackwardImpl(ffi::ThreadPool pool, F32 w, F32 acts, F32 h0, F32 ys, F32 dys,
                           F32 dhT, bool batch_major, F32Out du, F32Out dn, F32Out dh0) {
  Dims d;
  if (ffi::Error e = check(w, *du, h0, h0, batch_major, &d, 3); e.failure()) return e;
  gru_backward(w.typed_data(), acts.typed_data(), h0.typed_data(), ys.typed_data(),
               dys.typed_data(), dhT.typed_data(), d.T, d.B, d.H, batch_major,
               du->typed_data(), dn->typed_data(), dh0->typed_data(),
               wanted_threads(pool.num_threads()), pool_schedule(pool));
  return ffi::Error::Success();
}

// The weight gradients (weight_grads): x [T, B, I] (or batch-major), h0
// [B, H], ys and d in the layout of x with H and N columns; dw_ih [I, N],
// dw_hh [H, N], db [N]. Without x (the recurrence over a given
// projection): dw_hh and db only.
ffi::Error WeightGradsImpl(ffi::ThreadPool pool, const F32* x, F32 h0, F32 ys, F32 d,
                           bool batch_major, F32Out* dw_ih, F32Out dw_hh, F32Out db) {
  auto hd = h0.dimensions(), yd = ys.dimensions(), dd = d.dimensions();
  if (hd.size() != 2) return ffi::Error::InvalidArgument("h0 must be [B, H]");
  const int64_t B = hd[0], H = hd[1];
  if (yd.size() != 3 || yd[batch_major ? 0 : 1] != B || yd[2] != H)
    return ffi::Error::InvalidArgument("ys must be [T, B, H] or [B, T, H]");
  const int64_t T = yd[batch_major ? 1 : 0];
  if (dd.size() != 3 || dd[0] != yd[0] || dd[1] != yd[1])
    return ffi::Error::InvalidArgument("d must be [T, B, N] or [B, T, N], as ys");
  const int64_t N = dd[2];
  int64_t I = 0;
  if (x != nullptr) {
    auto xd = x->dimensions();
    if (xd.size() != 3 || xd[0] != yd[0] || xd[1] != yd[1])
      return ffi::Error::InvalidArgument("x must be [T, B, I] or [B, T, I], as ys");
    I = xd[2];
    auto id = (*dw_ih)->dimensions();
    if (id.size() != 2 || id[0] != I || id[1] != N)
      return ffi::Error::InvalidArgument("dw_ih must be [I, N]");
  }
  auto wd = dw_hh->dimensions();
  if (wd.size() != 2 || wd[0] != H || wd[1] != N || db->dimensions().size() != 1 ||
      db->dimensions()[0] != N)
    return ffi::Error::InvalidArgument("the results must be [H, N] and [N]");
  weight_grads(x == nullptr ? nullptr : x->typed_data(), I, h0.typed_data(),
               ys.typed_data(), H, d.typed_data(), N, T, B, batch_major,
               x == nullptr ? nullptr : (*dw_ih)->typed_data(),
               dw_hh->typed_data(), db->typed_data(), wanted_threads(pool.num_threads()),
               pool_schedule(pool));
  return ffi::Error::Success();
}

ffi::Error InputWeightGradsImpl(ffi::ThreadPool pool, F32 x, F32 h0, F32 ys, F32 d,
                                bool batch_major, F32Out dw_ih, F32Out dw_hh, F32Out db) {
  return WeightGradsImpl(pool, &x, h0, ys, d, batch_major, &dw_ih, dw_hh, db);
}

ffi::Error RecurrentWeightGradsImpl(ffi::ThreadPool pool, F32 h0, F32 ys, F32 d,
                                    bool batch_major, F32Out dw_hh, F32Out db) {
  return WeightGradsImpl(pool, nullptr, h0, ys, d, batch_major, nullptr, dw_hh, db);
}

// The thread pool, n array arguments, the layout, then m results.
template <int n, int m>
auto bind() {
  if constexpr (m > 0) {
    return bind<n, m - 1>().template Ret<F32>();
  } else if constexpr (n > 0) {
    return bind<n - 1, 0>().template Arg<F32>();
  } else {
    return ffi::Ffi::Bind().Ctx<ffi::ThreadPool>();
  }
}

template <int n, int m>
auto bind_with_layout() {
  if constexpr (m > 0) {
    return bind_with_layout<n, m - 1>().template Ret<F32>();
  } else {
    return bind<n, 0>().template Attr<bool>("batch_major");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmForwardInfer, ForwardInferImpl,
                              (bind_with_layout<5, 2>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmForwardTrain, ForwardTrainImpl,
                              (bind_with_layout<5, 3>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmFusedForwardInfer, FusedForwardInferImpl,
                              (bind_with_layout<6, 2>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmFusedForwardTrain, FusedForwardTrainImpl,
                              (bind_with_layout<6, 3>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmBackward, RecurrenceBackwardImpl,
                              (bind_with_layout<7, 3>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooLstmLayerBackward, LayerBackwardImpl,
                              (bind_with_layout<8, 4>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooGruForwardInfer, GruForwardInferImpl,
                              (bind_with_layout<5, 1>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooGruForwardTrain, GruForwardTrainImpl,
                              (bind_with_layout<5, 2>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooGruBackward, GruBackwardImpl,
                              (bind_with_layout<6, 3>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooWeightGrads, InputWeightGradsImpl,
                              (bind_with_layout<4, 3>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnZooRecurrentWeightGrads, RecurrentWeightGradsImpl,
                              (bind_with_layout<3, 2>()));
