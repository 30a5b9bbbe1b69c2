// The GRU's forward and backward recurrences.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

namespace {

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

}  // namespace
