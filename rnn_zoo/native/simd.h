// The 16-float vectors (GCC vector extensions), their math (exp, sigmoid,
// tanh) and the register tiles of the inner products.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

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

}  // namespace
