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

namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
constexpr int kLanes = 16;
constexpr int kMaxRows = 6;  // rows of a register tile (x 4 vectors: 24 accumulators)

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }
inline v16 splat(float x) {
  return v16{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}

// Loads n <= 16 floats (the rest zero); stores n.
inline v16 load_n(const float* p, int n) {
  if (n == kLanes) return load(p);
  alignas(64) float tmp[kLanes] = {};
  std::memcpy(tmp, p, sizeof(float) * n);
  return load(tmp);
}
inline void store_n(float* p, v16 v, int n) {
  if (n == kLanes) return store(p, v);
  alignas(64) float tmp[kLanes];
  store(tmp, v);
  std::memcpy(p, tmp, sizeof(float) * n);
}

// Four vectors H floats apart (a row's saved gates).
inline void store4(float* p, int64_t H, int n, v16 a, v16 b, v16 c, v16 d) {
  store_n(p, a, n);
  store_n(p + H, b, n);
  store_n(p + 2 * H, c, n);
  store_n(p + 3 * H, d, n);
}

inline v16 vexp(v16 x) {
  x = x > 88.0f ? splat(88.0f) : x;
  x = x < -87.0f ? splat(-87.0f) : x;
  const v16 magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  v16 n = (x * 1.44269504088896341f + magic) - magic;
  v16 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v16i e = (__builtin_convertvector(n, v16i) + 127) << 23;
  v16 scale;  // 2^n: e's bits as floats (memcpy: no type-punned reference)
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}
// 1 / d: AVX-512's 14-bit estimate and one Newton step (about 1 ulp; a
// division of 16 floats costs several times as much), else a division.
inline v16 vrecip(v16 d) {
#if defined(__AVX512F__)
  const v16 r = reinterpret_cast<v16>(_mm512_rcp14_ps(reinterpret_cast<__m512>(d)));
  return r * (2.0f - d * r);
#else
  return 1.0f / d;
#endif
}
inline v16 vsigmoid(v16 z) { return vrecip(1.0f + vexp(-z)); }
inline v16 vtanh(v16 z) { return 2.0f * vrecip(1.0f + vexp(-2.0f * z)) - 1.0f; }

// acc[r][v] = (acc[r][v] if accumulate) + sum_k a[r * lda + k] *
// b[v][k * ldb .. + 16], for r < MR, v < NV. The rows of a are prefetched
// 64 floats ahead: each step's h_{t-1} rows were just written, half of them
// by another core, and the hardware prefetcher alone left the FMAs waiting
// (3-6% of the forward step).
template <int MR, int NV>
inline void tile(const float* a, int64_t lda, int64_t K, const float* const* b,
                 int64_t ldb, v16 (&acc)[kMaxRows][4], bool accumulate) {
  // The sums in a local array, copied in and out: GCC cannot tell that the
  // loads below do not read the caller's acc (floats both), and kept
  // storing every accumulator to it after each FMA (24 stores per k).
  v16 sum[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) sum[r][v] = accumulate ? acc[r][v] : v16{};
  auto step = [&](int64_t k) {
    v16 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b[v] + k * ldb);
    for (int r = 0; r < MR; ++r) {
      const v16 ar = splat(a[r * lda + k]);
      for (int v = 0; v < NV; ++v) sum[r][v] += ar * bv[v];
    }
  };
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    for (int r = 0; r < MR; ++r) __builtin_prefetch(a + r * lda + k + 4 * kLanes);
    for (int kk = 0; kk < kLanes; ++kk) step(k + kk);
  }
  for (; k < K; ++k) step(k);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = sum[r][v];
}

template <int NV>
inline void tile_rows(int mr, const float* a, int64_t lda, int64_t K,
                      const float* const* b, int64_t ldb, v16 (&acc)[kMaxRows][4],
                      bool accumulate = false) {
  switch (mr) {
    case 6: return tile<6, NV>(a, lda, K, b, ldb, acc, accumulate);
    case 5: return tile<5, NV>(a, lda, K, b, ldb, acc, accumulate);
    case 4: return tile<4, NV>(a, lda, K, b, ldb, acc, accumulate);
    case 3: return tile<3, NV>(a, lda, K, b, ldb, acc, accumulate);
    case 2: return tile<2, NV>(a, lda, K, b, ldb, acc, accumulate);
    default: return tile<1, NV>(a, lda, K, b, ldb, acc, accumulate);
  }
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits spinning, then yielding the core (a team member that lost its core
// to another thread gets it back instead of the waiter burning it). The
// spin is short: 64 pauses, about 1 us on AMD Zen 4 (a pause is ~64 cycles
// there). When a team member is not running (its core taken by another
// thread: right after an XLA scan program, presumably XLA's own pool
// workers still spinning), each step's barrier costs the whole spin and a
// switch: with 4000 pauses (~70 us) the LSTM's forward pass at
// 16x256x32x64 took 10-15 ms instead of 1.5 in some calls after the scan
// runner had run, with 1000 pauses 9 ms, with 256 5 ms, with 64 at most
// 4.4 ms (but such 2-3 ms calls came more often); while both run, the
// spin length made no difference (paired A/B at two shapes).
constexpr int kSpins = 64;
template <class Done>
inline void spin_until(Done done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < kSpins) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
}

class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    if (n_ == 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
    } else {
      spin_until([&] { return gen_.load(std::memory_order_acquire) != gen; });
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// Which 16-unit groups thread tid of n computes.
struct Split {
  int64_t groups;  // ceil(H / 16)
  int threads;
  int64_t begin(int t) const { return groups * t / threads; }
  int64_t end(int t) const { return groups * (t + 1) / threads; }
};

using Schedule = std::function<void(std::function<void()>)>;

#if defined(__linux__)
inline int current_cpu() { return sched_getcpu(); }
#else
inline int current_cpu() { return -1; }
#endif

// A helper that starts on a CPU where a team member already runs moves off
// it for the call (its affinity without the members' CPUs; restored after):
// Linux often woke XLA's pool thread on the caller's own CPU, and the two
// then shared one core, every step's barrier a context switch (the LSTM's
// forward pass at 16x256x32x64 took 3.5-4.5 ms instead of 1.5 in the
// throughput benchmark, the helper on the caller's CPU in every call).
class CpuMove {
 public:
  CpuMove(std::atomic<int>* cpus, int tid) {
#if defined(__linux__)
    const int cpu = current_cpu();
    cpus[tid].store(cpu);
    bool shared = false;
    for (int i = 0; i < tid; ++i) shared |= cpus[i].load() == cpu;
    if (!shared || sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
    cpu_set_t others = saved_;
    for (int i = 0; i < tid; ++i) {
      const int c = cpus[i].load();
      if (c >= 0 && c < CPU_SETSIZE) CPU_CLR(c, &others);
    }
    moved_ = CPU_COUNT(&others) > 0 && sched_setaffinity(0, sizeof(others), &others) == 0;
#else
    (void)cpus;
    (void)tid;
#endif
  }
  ~CpuMove() {
#if defined(__linux__)
    if (moved_) sched_setaffinity(0, sizeof(saved_), &saved_);
#endif
  }
  CpuMove(const CpuMove&) = delete;
  CpuMove& operator=(const CpuMove&) = delete;

 private:
#if defined(__linux__)
  cpu_set_t saved_;
#endif
  bool moved_ = false;
};

// Runs body(tid, split, barrier) on up to `want` threads: this one (tid 0)
// and the tasks given to `schedule` that start within kJoinWait. A task that
// starts later (its pool's threads were busy: say, with another of these
// calls that XLA ran at the same time, waiting for its own helpers) finds
// the team closed and returns at once, so no call waits for a thread that
// cannot come; one that runs inline (no pool) takes no part either. The
// team's state is shared with the tasks, since late ones outlive the call.
constexpr auto kJoinWait = std::chrono::milliseconds(2);

template <class Body>
void run_team(int64_t H, int want, const Schedule& schedule, Body body) {
  Split split{(H + kLanes - 1) / kLanes, 1};
  want = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(want, split.groups)));
  if (want == 1 || !schedule) {
    Barrier barrier(1);
    body(0, split, barrier);
    return;
  }
  constexpr int kClosed = 1 << 30;
  struct State {
    explicit State(int n) : cpus(new std::atomic<int>[n]) {
      for (int i = 0; i < n; ++i) cpus[i].store(-1);
    }
    std::atomic<int> joined{0};  // helpers in the team, | kClosed once closed
    std::atomic<int> finished{0};
    std::atomic<bool> go{false};
    std::function<void(int)> work;  // set before go
    std::unique_ptr<std::atomic<int>[]> cpus;  // where each member started
  };
  auto st = std::make_shared<State>(want);
  st->cpus[0].store(current_cpu());
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 1; i < want; ++i) {
    schedule([st, caller] {
      if (std::this_thread::get_id() == caller) return;  // ran inline: no pool
      int n = st->joined.load();
      do {
        if (n & kClosed) return;  // too late: the team started without us
      } while (!st->joined.compare_exchange_weak(n, n + 1));
      const int tid = n + 1;
      CpuMove move(st->cpus.get(), tid);
      spin_until([&] { return st->go.load(std::memory_order_acquire); });
      st->work(tid);
      st->finished.fetch_add(1, std::memory_order_acq_rel);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + kJoinWait;
  spin_until([&] {
    return st->joined.load() == want - 1 || std::chrono::steady_clock::now() > deadline;
  });
  const int helpers = st->joined.fetch_or(kClosed) & ~kClosed;
  split.threads = 1 + helpers;
  Barrier barrier(split.threads);
  st->work = [&](int tid) { body(tid, split, barrier); };
  st->go.store(true, std::memory_order_release);
  body(0, split, barrier);
  // The helpers in the team read split, barrier and body: wait for them.
  spin_until([&] { return st->finished.load(std::memory_order_acquire) == helpers; });
}

// Threads: RNN_ZOO_NATIVE_THREADS if set, else one per thread of XLA's pool
// (one per core); at most one per group of 16 units.
int wanted_threads(int64_t pool_threads) {
  if (const char* env = std::getenv("RNN_ZOO_NATIVE_THREADS")) {
    const int64_t n = std::atoll(env);
    if (n > 0) return static_cast<int>(n);
  }
  return static_cast<int>(std::max<int64_t>(1, pool_threads));
}

// Each thread packs the groups g0 <= g < g1 it computes (in parallel, and
// into its own core's cache), into buffers it keeps between calls (no
// allocation, and no page faults, per call): slot 0 the recurrent weight,
// slot 1 the input weight of the fused projection.
std::vector<float>& thread_buffer(int slot = 0) {
  thread_local std::vector<float> buffers[2];
  return buffers[slot];
}

// Forward packing of a [K, q H] weight (q gate blocks of H columns):
// wp[g - g0][k][gate][16] = w[k, gate*H + 16g + j] (0 past H).
const std::vector<float>& pack_forward(const float* w, int64_t K, int64_t H, int q,
                                       int64_t g0, int64_t g1, int slot = 0) {
  std::vector<float>& wp = thread_buffer(slot);
  wp.assign((g1 - g0) * K * q * kLanes, 0.0f);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t k = 0; k < K; ++k)
      for (int gate = 0; gate < q; ++gate)
        for (int j = 0; j < kLanes && g * kLanes + j < H; ++j)
          wp[(((g - g0) * K + k) * q + gate) * kLanes + j] =
              w[k * q * H + gate * H + g * kLanes + j];
  return wp;
}

// Backward packing (the transpose) of a [rows, cols] weight:
// wt[g - g0][k][16] = w[16g + j, k], k < cols (0 past rows).
const std::vector<float>& pack_transposed(const float* w, int64_t rows, int64_t cols,
                                          int64_t g0, int64_t g1, int slot = 0) {
  std::vector<float>& wt = thread_buffer(slot);
  wt.assign((g1 - g0) * cols * kLanes, 0.0f);
  for (int64_t g = g0; g < g1; ++g)
    for (int j = 0; j < kLanes && g * kLanes + j < rows; ++j)
      for (int64_t k = 0; k < cols; ++k)
        wt[((g - g0) * cols + k) * kLanes + j] = w[(g * kLanes + j) * cols + k];
  return wt;
}

// The recurrent weight [H, q H]: wt[g - g0][k][16] = w[16g + j, k], k < q H.
const std::vector<float>& pack_backward(const float* w, int64_t H, int q, int64_t g0,
                                        int64_t g1) {
  return pack_transposed(w, H, q * H, g0, g1);
}

// out[r, units of groups g0..g1) = a[r, :K] x wt[:, those units] for every
// row r < B (a's rows lda apart; wt packed for groups g0..g1), then
// finish(row, unit offset, n, acc) for each 16-unit vector: the recurrent
// product of the backward pass.
template <class Finish>
void transposed_product(const float* a, int64_t lda, int64_t K, int64_t B,
                        const std::vector<float>& wt, int64_t g0, int64_t g1, int64_t H,
                        Finish finish) {
  const int64_t row_blocks = (B + kMaxRows - 1) / kMaxRows;
  for (int64_t g = g0; g < g1; g += 4) {
    const int nv = static_cast<int>(std::min<int64_t>(4, g1 - g));
    const float* b[4];
    for (int v = 0; v < nv; ++v) b[v] = wt.data() + (g - g0 + v) * K * kLanes;
    for (int64_t blk = 0; blk < row_blocks; ++blk) {
      const int64_t r0 = B * blk / row_blocks;
      const int mr = static_cast<int>(B * (blk + 1) / row_blocks - r0);
      v16 acc[kMaxRows][4];
      const float* arow = a + r0 * lda;
      switch (nv) {
        case 4: tile_rows<4>(mr, arow, lda, K, b, kLanes, acc); break;
        case 3: tile_rows<3>(mr, arow, lda, K, b, kLanes, acc); break;
        case 2: tile_rows<2>(mr, arow, lda, K, b, kLanes, acc); break;
        default: tile_rows<1>(mr, arow, lda, K, b, kLanes, acc); break;
      }
      for (int r = 0; r < mr; ++r)
        for (int v = 0; v < nv; ++v) {
          const int64_t u = (g + v) * kLanes;
          finish(r0 + r, u, static_cast<int>(std::min<int64_t>(kLanes, H - u)), acc[r][v]);
        }
    }
  }
}

// Where row r of step t of a [T, B, width] sequence starts: time-major
// ([T, B, width]) or batch-major ([B, T, width], the caller's layout, which
// spares XLA a transpose of the inputs and of the outputs).
struct Seq {
  int64_t step, row;  // strides
  Seq(bool batch_major, int64_t T, int64_t B, int64_t width)
      : step(batch_major ? width : B * width), row(batch_major ? T * width : width) {}
  int64_t at(int64_t t, int64_t r) const { return t * step + r * row; }
};

// The forward recurrence over `in`: xp (x W_ih, without the bias b) or, with
// w_ih, the inputs x themselves ([T, B, I] or [B, T, I]): each step's
// x_t W_ih is then computed in the same register tiles as h_{t-1} W_hh
// (K = I, then K = H), so xp is never written to memory and read back,
// and the projection runs at the tiles' rate. acts (if not null) gets
// [T, B, 4H] activations i, f, g, o and cs [T, B, H] every c_t
// (time-major); else c_out gets c_{T-1} only.
void forward(const float* w, const float* bias, const float* in, const float* w_ih,
             int64_t I, const float* h0, const float* c0, int64_t T, int64_t B,
             int64_t H, bool batch_major, float* ys, float* cs, float* acts,
             float* c_out, int threads, const Schedule& schedule) {
  const int64_t G4 = 4 * H;
  const bool fused = w_ih != nullptr;
  const Seq sx(batch_major, T, B, fused ? I : G4), sy(batch_major, T, B, H);
  const int64_t row_blocks = (B + kMaxRows - 1) / kMaxRows;  // of equal size <= 6
  if (cs == nullptr) std::memcpy(c_out, c0, sizeof(float) * B * H);
  run_team(H, threads, schedule, [&](int tid, const Split& split, Barrier& barrier) {
    const int64_t g0 = split.begin(tid), g1 = split.end(tid);
    const std::vector<float>& wp = pack_forward(w, H, H, 4, g0, g1);
    const float* wpi = fused ? pack_forward(w_ih, I, H, 4, g0, g1, 1).data() : nullptr;
    for (int64_t t = 0; t < T; ++t) {
      const float* h_prev = t == 0 ? h0 : ys + sy.at(t - 1, 0);
      const int64_t ldh = t == 0 ? H : sy.row;
      const float* c_prev = cs == nullptr ? c_out : (t == 0 ? c0 : cs + (t - 1) * B * H);
      float* c_now = cs == nullptr ? c_out : cs + t * B * H;
      // This step's inputs (of this thread's units) into L2 now, while the
      // tiles compute (and xp into L1 just before each row block's tile).
      for (int64_t row = 0; row < B; ++row) {
        const float* x = in + sx.at(t, row);
        if (fused) {
          for (int64_t k = 0; k < I; k += kLanes) __builtin_prefetch(x + k, 0, 2);
        } else {
          for (int64_t g = g0; g < g1; ++g)
            for (int q = 0; q < 4; ++q) __builtin_prefetch(x + q * H + g * kLanes, 0, 2);
        }
      }
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t u = g * kLanes;
        const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u));
        const float* base = wp.data() + (g - g0) * H * 4 * kLanes;
        const float* b[4] = {base, base + kLanes, base + 2 * kLanes, base + 3 * kLanes};
        const float* base_i = fused ? wpi + (g - g0) * I * 4 * kLanes : nullptr;
        const float* bx[4] = {base_i, base_i + kLanes, base_i + 2 * kLanes,
                              base_i + 3 * kLanes};
        const v16 bi = load_n(bias + u, n), bf = load_n(bias + H + u, n);
        const v16 bg = load_n(bias + 2 * H + u, n), bo = load_n(bias + 3 * H + u, n);
        for (int64_t blk = 0; blk < row_blocks; ++blk) {
          const int64_t r0 = B * blk / row_blocks;
          const int mr = static_cast<int>(B * (blk + 1) / row_blocks - r0);
          for (int r = 0; r < mr; ++r) {
            if (!fused) {
              const float* x = in + sx.at(t, r0 + r) + u;
              for (int q = 0; q < 4; ++q) __builtin_prefetch(x + q * H);
            }
            __builtin_prefetch(c_prev + (r0 + r) * H + u);
          }
          v16 acc[kMaxRows][4];
          if (fused) {
            tile_rows<4>(mr, in + sx.at(t, r0), sx.row, I, bx, 4 * kLanes, acc);
            tile_rows<4>(mr, h_prev + r0 * ldh, ldh, H, b, 4 * kLanes, acc, true);
          } else {
            tile_rows<4>(mr, h_prev + r0 * ldh, ldh, H, b, 4 * kLanes, acc);
          }
          // Gate by gate over the rows: each loop has mr independent
          // dependency chains for the core to overlap (row by row, the
          // activations' long chains kept it waiting: 5-10% of the step).
          v16 z[4][kMaxRows], cn[kMaxRows];
          for (int r = 0; r < mr; ++r)
            for (int q = 0; q < 4; ++q) z[q][r] = acc[r][q];
          if (!fused)
            for (int r = 0; r < mr; ++r) {
              const float* x = in + sx.at(t, r0 + r) + u;
              for (int q = 0; q < 4; ++q) z[q][r] += load_n(x + q * H, n);
            }
          for (int r = 0; r < mr; ++r) {
            z[0][r] += bi;
            z[1][r] += bf;
            z[2][r] += bg;
            z[3][r] += bo;
          }
          for (int r = 0; r < mr; ++r) {
            z[0][r] = vsigmoid(z[0][r]);
            z[1][r] = vsigmoid(z[1][r]);
            z[2][r] = vtanh(z[2][r]);
            z[3][r] = vsigmoid(z[3][r]);
          }
          for (int r = 0; r < mr; ++r) {
            const int64_t row = r0 + r;
            cn[r] = z[1][r] * load_n(c_prev + row * H + u, n) + z[0][r] * z[2][r];
            store_n(c_now + row * H + u, cn[r], n);
          }
          for (int r = 0; r < mr; ++r) {
            const int64_t row = r0 + r;
            store_n(ys + sy.at(t, row) + u, z[3][r] * vtanh(cn[r]), n);
            if (acts != nullptr)
              store4(acts + (t * B + row) * G4 + u, H, n, z[0][r], z[1][r], z[2][r], z[3][r]);
          }
        }
      }
      barrier.wait();
    }
  });
}

// The backward recurrence: from dys (the layout of ys), dh_T, dc_T and the
// forward's acts and cs, writes dz (the layout of xp: the gradient of xp_t,
// of b and of u_t = h_{t-1} W_hh), dh0 and dc0; with w_ih ([I, 4H]) also
// dx = dz W_ih^T (the layout of x), each step's in the same pass as its
// dz_t W_hh^T, while dz_t is in cache (the threads split x's I columns
// in 16-column groups as they split the hidden units). In one process
// beside XLA's GEMM over all the rows (2 threads): 0.45-0.88x its time,
// 200-220 GFLOP/s against 90-180 (16x256x32x64 to 64x64x256x512).
void backward(const float* w, const float* acts, const float* cs, const float* c0,
              const float* dys, const float* dhT, const float* dcT, int64_t T,
              int64_t B, int64_t H, bool batch_major, float* dz, float* dh0, float* dc0,
              int threads, const Schedule& schedule, const float* w_ih = nullptr,
              int64_t I = 0, float* dx = nullptr) {
  const int64_t G4 = 4 * H;
  const Seq sz(batch_major, T, B, G4), sy(batch_major, T, B, H), sx(batch_major, T, B, I);
  // dh0 holds dh flowing into h_{t} from step t+1 (dz_{t+1} W_hh^T), dc0 the
  // carry's dc; each thread touches only its own units' columns of both.
  std::memcpy(dh0, dhT, sizeof(float) * B * H);
  std::memcpy(dc0, dcT, sizeof(float) * B * H);
  run_team(H, threads, schedule, [&](int tid, const Split& split, Barrier& barrier) {
    const int64_t g0 = split.begin(tid), g1 = split.end(tid);
    const std::vector<float>& wt = pack_backward(w, H, 4, g0, g1);
    const Split split_x{(I + kLanes - 1) / kLanes, split.threads};
    const int64_t gx0 = split_x.begin(tid), gx1 = split_x.end(tid);
    const std::vector<float>* wt_ih =
        w_ih != nullptr ? &pack_transposed(w_ih, I, G4, gx0, gx1, 1) : nullptr;
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* a_t = acts + t * B * G4;
      const float* c_t = cs + t * B * H;
      const float* c_prev = t == 0 ? c0 : cs + (t - 1) * B * H;
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t u = g * kLanes;
        const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u));
        // Rows in blocks: first every row's tanh(c_t) (independent chains the
        // core overlaps; row by row, each row waited for its own), then the
        // rest, which is short.
        for (int64_t r0 = 0; r0 < B; r0 += kMaxRows) {
          const int mr = static_cast<int>(std::min<int64_t>(kMaxRows, B - r0));
          for (int r = 0; r < mr; ++r) {  // the next block's rows, ahead
            const int64_t ahead = r0 + kMaxRows + r;
            if (ahead >= B) break;
            const float* a2 = a_t + ahead * G4 + u;
            for (int q = 0; q < 4; ++q) __builtin_prefetch(a2 + q * H);
            __builtin_prefetch(c_t + ahead * H + u);
            __builtin_prefetch(dys + sy.at(t, ahead) + u);
          }
          v16 tcs[kMaxRows];
          for (int r = 0; r < mr; ++r) tcs[r] = vtanh(load_n(c_t + (r0 + r) * H + u, n));
          for (int r = 0; r < mr; ++r) {
            const int64_t row = r0 + r;
            const float* a = a_t + row * G4 + u;
            const v16 i = load_n(a, n), f = load_n(a + H, n);
            const v16 gg = load_n(a + 2 * H, n), o = load_n(a + 3 * H, n);
            const v16 tc = tcs[r];
            const v16 dh = load_n(dys + sy.at(t, row) + u, n) + load_n(dh0 + row * H + u, n);
            const v16 dc = load_n(dc0 + row * H + u, n) + dh * o * (1.0f - tc * tc);
            float* d = dz + sz.at(t, row) + u;
            store_n(d, dc * gg * i * (1.0f - i), n);
            store_n(d + H, dc * load_n(c_prev + row * H + u, n) * f * (1.0f - f), n);
            store_n(d + 2 * H, dc * i * (1.0f - gg * gg), n);
            store_n(d + 3 * H, dh * tc * o * (1.0f - o), n);
            store_n(dc0 + row * H + u, dc * f, n);
          }
        }
      }
      barrier.wait();
      // dh_{t-1} for this thread's units: dz_t [B, 4H] x W_hh^T[:, units].
      transposed_product(dz + sz.at(t, 0), sz.row, G4, B, wt, g0, g1, H,
                         [&](int64_t row, int64_t u, int n, v16 acc) {
                           store_n(dh0 + row * H + u, acc, n);
                         });
      if (wt_ih != nullptr)
        transposed_product(dz + sz.at(t, 0), sz.row, G4, B, *wt_ih, gx0, gx1, I,
                           [&](int64_t row, int64_t u, int n, v16 acc) {
                             store_n(dx + sx.at(t, row) + u, acc, n);
                           });
      // No barrier needed here: the next step's pointwise part reads only
      // this thread's own columns of dh0 and writes dz_{t-1}, not dz_t.
    }
  });
}

// The weight gradients, one GEMM over every step's rows (t, b):
//   dw_ih = sum x_{t,b}^T d_{t,b},  dw_hh = sum h_{t-1,b}^T d_{t,b},
//   db = sum d_{t,b},
// that is C = A^T D with A's rows [x_{t,b} | h_{t-1,b} | 1] (M = I + H + 1
// columns; h_{-1} = h0) and D's rows d_{t,b} (N columns: dz, or the GRU's
// du). XLA:CPU ran these transposed GEMMs at 130-155 GFLOP/s on 2 cores of
// a 232 GFLOP/s machine at 32x128x128x256 (170-190 at 64x64x256x512);
// this runs at 170-210.
// Each thread computes its own 16-column groups of C; the rows go in
// chunks of kChunk: the chunk's A packed as [6-row tile of C][k][6] (each
// thread its own copy: A is narrow beside D), then each 6 x 64 tile of C
// adds the chunk in 24 registers (the recurrence's register tile with A's
// and D's roles), reading D's rows where they are (a panel with a partial
// vector, past N % 16, is copied out first). Each element of C sums its
// rows in the same order (the layout's) whatever the number of threads.
// Measured (paired A/B, 2 threads, 32x128x128x256 and 64x64x256x512):
// chunks of 128 rows took 1.07-1.09x the time of 256, and of 512 rows
// 0.92-0.99x, but the longer sums doubled the largest gradient error
// against float64 (5.7e-7 of the largest value against 2.4e-7, as with
// XLA's GEMMs; benchmarks.scan_precision). Dropped: blocks of 16-64 tiles of C
// so the block's packed A stays in L2 (1.03-1.08x), tiles of 8 x 3 and
// 12 x 2 vectors (1.02-1.10x), software prefetch of D's rows 4 or 16 rows
// ahead (1.10-1.21x). A first version copied each 64-column panel of D
// into a buffer: the copies took 7% of a one-thread profile.
constexpr int64_t kChunk = 256;
constexpr int kWRows = kMaxRows, kWVecs = 4;  // a tile of C: rows x 16-float vectors

// c[r][v * 16 ..] (+)= sum_k ap[k][r] * dr[k][off + v * 16 ..], r < kWRows, v < NV.
// The chunk's sum starts from zero and is added to c at the end: a sum over
// all the rows in two levels (chunks, then the chunks' sums), not one chain
// of T * B terms.
template <int NV>
inline void outer_tile(const float* ap, const float* const* dr, int64_t off, int64_t kc,
                       float* const* c, bool first) {
  v16 sum[kWRows][NV];  // local: see tile()
  for (int r = 0; r < kWRows; ++r)
    for (int v = 0; v < NV; ++v) sum[r][v] = v16{};
  for (int64_t k = 0; k < kc; ++k) {
    const float* d = dr[k] + off;
    v16 dv[NV];
    for (int v = 0; v < NV; ++v) dv[v] = load(d + v * kLanes);
    for (int r = 0; r < kWRows; ++r) {
      const v16 ar = splat(ap[k * kWRows + r]);
      for (int v = 0; v < NV; ++v) sum[r][v] += ar * dv[v];
    }
  }
  for (int r = 0; r < kWRows; ++r)
    for (int v = 0; v < NV; ++v)
      store(c[r] + v * kLanes, first ? sum[r][v] : load(c[r] + v * kLanes) + sum[r][v]);
}

void weight_grads(const float* x, int64_t I, const float* h0, const float* ys, int64_t H,
                  const float* d, int64_t N, int64_t T, int64_t B, bool batch_major,
                  float* dw_ih, float* dw_hh, float* db, int threads,
                  const Schedule& schedule) {
  const int64_t M = I + H + 1, tiles = (M + kWRows - 1) / kWRows, R = T * B;
  const Seq sx(batch_major, T, B, I), sy(batch_major, T, B, H), sd(batch_major, T, B, N);
  auto c_row = [&](int64_t m) -> float* {
    return m < I ? dw_ih + m * N : m < I + H ? dw_hh + (m - I) * N : db;
  };
  if (R == 0) {
    for (int64_t m = 0; m < M; ++m) std::memset(c_row(m), 0, sizeof(float) * N);
    return;
  }
  constexpr int kPanel = kWVecs * kLanes;
  run_team(N, threads, schedule, [&](int tid, const Split& split, Barrier&) {
    const int64_t g0 = split.begin(tid), g1 = split.end(tid);
    std::vector<float>& ap = thread_buffer(0);
    std::vector<float>& dp = thread_buffer(1);
    ap.resize(tiles * kChunk * kWRows);
    dp.resize(kChunk * kPanel);
    // The chunk's rows of x, h_{t-1} and d, and of the copied panel.
    std::vector<const float*> rows(4 * kChunk);
    const float** xr = rows.data();
    const float** hr = xr + kChunk;
    const float** dr = hr + kChunk;
    const float** pr = dr + kChunk;
    for (int64_t k = 0; k < kChunk; ++k) pr[k] = dp.data() + k * kPanel;
    alignas(64) float scratch[kWRows][kPanel];  // a partial tile of C
    for (int64_t k0 = 0; k0 < R; k0 += kChunk) {
      const int64_t kc = std::min(kChunk, R - k0);
      // Row k0 + k is (t, b) in the layout's memory order: d's and x's rows
      // are then consecutive (batch-major rows of one step lie T rows apart,
      // a page or more, and taking them in (t, b) order cost the larger
      // shapes 1.3-1.5x).
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t row = k0 + k;
        const int64_t t = batch_major ? row % T : row / B, b = batch_major ? row / T : row % B;
        xr[k] = x == nullptr ? nullptr : x + sx.at(t, b);
        hr[k] = t == 0 ? h0 + b * H : ys + sy.at(t - 1, b);
        dr[k] = d + sd.at(t, b);
      }
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t m0 = tile * kWRows;
        float* out = ap.data() + tile * kc * kWRows;
        if (m0 + kWRows <= I) {
          for (int64_t k = 0; k < kc; ++k)
            std::memcpy(out + k * kWRows, xr[k] + m0, sizeof(float) * kWRows);
        } else if (m0 >= I && m0 + kWRows <= I + H) {
          for (int64_t k = 0; k < kc; ++k)
            std::memcpy(out + k * kWRows, hr[k] + m0 - I, sizeof(float) * kWRows);
        } else {  // a tile across x's and h's columns, or the last
          for (int64_t k = 0; k < kc; ++k)
            for (int r = 0; r < kWRows; ++r) {
              const int64_t m = m0 + r;
              out[k * kWRows + r] = m < I ? xr[k][m] : m < I + H ? hr[k][m - I]
                                                    : m == I + H ? 1.0f : 0.0f;
            }
        }
      }
      for (int64_t g = g0; g < g1; g += kWVecs) {
        const int nv = static_cast<int>(std::min<int64_t>(kWVecs, g1 - g));
        const int64_t n0 = g * kLanes, width = std::min<int64_t>(nv * kLanes, N - n0);
        const bool copied = width < nv * kLanes;
        if (copied)
          for (int64_t k = 0; k < kc; ++k) {
            float* p = dp.data() + k * kPanel;  // = pr[k]
            std::memcpy(p, dr[k] + n0, sizeof(float) * width);
            std::memset(p + width, 0, sizeof(float) * (kPanel - width));
          }
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t m0 = tile * kWRows;
          const int mr = static_cast<int>(std::min<int64_t>(kWRows, M - m0));
          const bool direct = mr == kWRows && !copied;
          float* c[kWRows];
          for (int r = 0; r < kWRows; ++r) {
            c[r] = direct ? c_row(m0 + r) + n0 : scratch[r];
            if (!direct && r < mr && k0 > 0)
              std::memcpy(scratch[r], c_row(m0 + r) + n0, sizeof(float) * width);
          }
          const float* a = ap.data() + tile * kc * kWRows;
          // The next tile's rows of C into L2 now, for writing: C (3 MB at
          // 64x64x256x512) does not stay in cache between chunks, and its
          // loads and stores waited at each call's end (paired: 0.96-0.97x
          // the time there, 0.99-1.03x at 32x128x128x256).
          if (tile + 1 < tiles && (tile + 2) * kWRows <= M)
            for (int r = 0; r < kWRows; ++r)
              for (int v = 0; v < nv; ++v)
                __builtin_prefetch(c_row((tile + 1) * kWRows + r) + n0 + v * kLanes, 1, 2);
          const float* const* rows_d = copied ? pr : dr;
          const int64_t off = copied ? 0 : n0;
          switch (nv) {
            case 4: outer_tile<4>(a, rows_d, off, kc, c, k0 == 0); break;
            case 3: outer_tile<3>(a, rows_d, off, kc, c, k0 == 0); break;
            case 2: outer_tile<2>(a, rows_d, off, kc, c, k0 == 0); break;
            default: outer_tile<1>(a, rows_d, off, kc, c, k0 == 0); break;
          }
          if (!direct)
            for (int r = 0; r < mr; ++r)
              std::memcpy(c_row(m0 + r) + n0, scratch[r], sizeof(float) * width);
        }
      }
    }
  });
}

// The GRU (cuDNN/PyTorch form: r, z, n = blocks of xp + b; the reset gate
// multiplies h_{t-1} U_n + b_hn): forward over xp = x W_ih (no bias).
//   r = sigmoid(x_r + b_r + h U_r),  z = sigmoid(x_z + b_z + h U_z),
//   hn = h U_n + b_hn,  n = tanh(x_n + b_n + r hn),  h' = (1 - z) n + z h.
// acts (if not null) gets [T, B, 4H]: r, z, n, hn.
void gru_forward(const float* w, const float* bias, const float* b_hn, const float* xp,
                 const float* h0, int64_t T, int64_t B, int64_t H, bool batch_major,
                 float* ys, float* acts, int threads, const Schedule& schedule) {
  const int64_t G3 = 3 * H;
  const Seq sx(batch_major, T, B, G3), sy(batch_major, T, B, H);
  const int64_t row_blocks = (B + kMaxRows - 1) / kMaxRows;
  run_team(H, threads, schedule, [&](int tid, const Split& split, Barrier& barrier) {
    const int64_t g0 = split.begin(tid), g1 = split.end(tid);
    const std::vector<float>& wp = pack_forward(w, H, H, 3, g0, g1);
    for (int64_t t = 0; t < T; ++t) {
      const float* h_prev = t == 0 ? h0 : ys + sy.at(t - 1, 0);
      const int64_t ldh = t == 0 ? H : sy.row;
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t u = g * kLanes;
        const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u));
        const float* base = wp.data() + (g - g0) * H * 3 * kLanes;
        const float* b[3] = {base, base + kLanes, base + 2 * kLanes};
        const v16 br = load_n(bias + u, n), bz = load_n(bias + H + u, n);
        const v16 bn = load_n(bias + 2 * H + u, n), bhn = load_n(b_hn + u, n);
        for (int64_t blk = 0; blk < row_blocks; ++blk) {
          const int64_t r0 = B * blk / row_blocks;
          const int mr = static_cast<int>(B * (blk + 1) / row_blocks - r0);
          for (int r = 0; r < mr; ++r) {
            const float* x = xp + sx.at(t, r0 + r) + u;
            for (int q = 0; q < 3; ++q) __builtin_prefetch(x + q * H);
          }
          v16 acc[kMaxRows][4];
          tile_rows<3>(mr, h_prev + r0 * ldh, ldh, H, b, 3 * kLanes, acc);
          for (int r = 0; r < mr; ++r) {
            const int64_t row = r0 + r;
            const float* x = xp + sx.at(t, row) + u;
            const v16 rg = vsigmoid(acc[r][0] + load_n(x, n) + br);
            const v16 z = vsigmoid(acc[r][1] + load_n(x + H, n) + bz);
            const v16 hn = acc[r][2] + bhn;
            const v16 nn = vtanh(load_n(x + 2 * H, n) + bn + rg * hn);
            const v16 h = load_n(h_prev + row * ldh + u, n);
            store_n(ys + sy.at(t, row) + u, (1.0f - z) * nn + z * h, n);
            if (acts != nullptr) store4(acts + (t * B + row) * 4 * H + u, H, n, rg, z, nn, hn);
          }
        }
      }
      barrier.wait();
    }
  });
}

// The GRU's backward recurrence: from dys (the layout of ys), dh_T, the
// forward's acts and ys, writes du [T, B, 3H] (the gradient of
// u_t = h_{t-1} W_hh, in the layout of xp), dn [T, B, H] (of the
// candidate's pre-activation: the n block of dxp) and dh0.
void gru_backward(const float* w, const float* acts, const float* h0, const float* ys,
                  const float* dys, const float* dhT, int64_t T, int64_t B, int64_t H,
                  bool batch_major, float* du, float* dn, float* dh0, int threads,
                  const Schedule& schedule) {
  const int64_t G3 = 3 * H;
  const Seq su(batch_major, T, B, G3), sy(batch_major, T, B, H);
  // dh0: dh flowing into h_t from step t+1; dhz: its direct part dh z.
  std::memcpy(dh0, dhT, sizeof(float) * B * H);
  std::vector<float> dhz(B * H);
  run_team(H, threads, schedule, [&](int tid, const Split& split, Barrier& barrier) {
    const int64_t g0 = split.begin(tid), g1 = split.end(tid);
    const std::vector<float>& wt = pack_backward(w, H, 3, g0, g1);
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* a_t = acts + t * B * 4 * H;
      const float* h_prev = t == 0 ? h0 : ys + sy.at(t - 1, 0);
      const int64_t ldh = t == 0 ? H : sy.row;
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t u = g * kLanes;
        const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u));
        for (int64_t row = 0; row < B; ++row) {
          if (row + 2 < B) {
            const float* a2 = a_t + (row + 2) * 4 * H + u;
            for (int q = 0; q < 4; ++q) __builtin_prefetch(a2 + q * H);
            __builtin_prefetch(dys + sy.at(t, row + 2) + u);
          }
          const float* a = a_t + row * 4 * H + u;
          const v16 rg = load_n(a, n), z = load_n(a + H, n);
          const v16 nn = load_n(a + 2 * H, n), hn = load_n(a + 3 * H, n);
          const v16 dh = load_n(dys + sy.at(t, row) + u, n) + load_n(dh0 + row * H + u, n);
          const v16 dn_pre = dh * (1.0f - z) * (1.0f - nn * nn);
          const v16 h = load_n(h_prev + row * ldh + u, n);
          float* d = du + su.at(t, row) + u;
          store_n(d, dn_pre * hn * rg * (1.0f - rg), n);
          store_n(d + H, dh * (h - nn) * z * (1.0f - z), n);
          store_n(d + 2 * H, dn_pre * rg, n);
          store_n(dn + sy.at(t, row) + u, dn_pre, n);
          store_n(dhz.data() + row * H + u, dh * z, n);
        }
      }
      barrier.wait();
      transposed_product(du + su.at(t, 0), su.row, G3, B, wt, g0, g1, H,
                         [&](int64_t row, int64_t u, int n, v16 acc) {
                           store_n(dh0 + row * H + u, acc + load_n(dhz.data() + row * H + u, n), n);
                         });
    }
  });
}

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

Schedule pool_schedule(ffi::ThreadPool& pool) {
  if (pool.num_threads() < 1) return nullptr;
  return [&pool](std::function<void()> task) { pool.Schedule(std::move(task)); };
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, F32 w, F32 b, F32 xp, F32 h0, F32 c0,
                       bool batch_major, F32Out ys, F32Out c_last, F32Out cs,
                       F32Out acts, bool train) {
  Dims d;
  if (ffi::Error e = check(w, xp, h0, c0, batch_major, &d); e.failure()) return e;
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
