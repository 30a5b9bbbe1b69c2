// The LSTM's forward and backward recurrences.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

namespace {

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

}  // namespace
