// The weight gradients: one GEMM over every step's rows.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

namespace {

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

}  // namespace
