// Weight packing (per thread, into buffers kept between calls), the
// transposed product of the backward passes and the sequence layouts.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

namespace {

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

}  // namespace
