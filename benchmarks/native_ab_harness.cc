// The kernel functions of one version of rnn_zoo/native/rnn.cc (the file
// named by RNN_CC), called directly, without XLA: benchmarks/native_ab.py
// builds this once per version and times the versions against each other
// in one process. Helper threads come from a persistent pool of one thread
// per extra team member, as XLA's pool gives them.
#include RNN_CC

#include <condition_variable>
#include <deque>
#include <mutex>

namespace {

class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> task;
          {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return !tasks_.empty(); });
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          task();
        }
      });
    for (auto& t : threads_) t.detach();
  }
  void add(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
};

Schedule pool_for(int threads) {
  if (threads <= 1) return nullptr;
  static Pool* pool = new Pool(threads - 1);  // the first call's size
  return [](std::function<void()> task) { pool->add(std::move(task)); };
}

}  // namespace

extern "C" {

// The LSTM forward pass: over xp (w_ih null, I = 0) or x with w_ih; acts
// and cs null for inference (c_out then gets c_T).
void ab_forward(const float* w, const float* b, const float* in, const float* w_ih,
                int64_t I, const float* h0, const float* c0, int64_t T, int64_t B,
                int64_t H, int batch_major, float* ys, float* cs, float* acts,
                float* c_out, int threads) {
  forward(w, b, in, w_ih, I, h0, c0, T, B, H, batch_major != 0, ys, cs, acts, c_out,
          threads, pool_for(threads));
}

// The LSTM backward pass; with w_ih (I > 0), dx too (RNN_HAS_BACKWARD_DX:
// versions before 2026-12-03's afternoon computed no dx).
void ab_backward(const float* w, const float* acts, const float* cs, const float* c0,
                 const float* dys, const float* dhT, const float* dcT, int64_t T,
                 int64_t B, int64_t H, int batch_major, float* dz, float* dh0,
                 float* dc0, const float* w_ih, int64_t I, float* dx, int threads) {
#if RNN_HAS_BACKWARD_DX
  backward(w, acts, cs, c0, dys, dhT, dcT, T, B, H, batch_major != 0, dz, dh0, dc0,
           threads, pool_for(threads), w_ih, I, dx);
#else
  (void)w_ih, (void)I, (void)dx;
  backward(w, acts, cs, c0, dys, dhT, dcT, T, B, H, batch_major != 0, dz, dh0, dc0,
           threads, pool_for(threads));
#endif
}

#if RNN_HAS_WEIGHT_GRADS
// The weight gradients (x null, I = 0: dW_hh and db only).
void ab_weight_grads(const float* x, int64_t I, const float* h0, const float* ys,
                     int64_t H, const float* d, int64_t N, int64_t T, int64_t B,
                     int batch_major, float* dw_ih, float* dw_hh, float* db,
                     int threads) {
  weight_grads(x, I, h0, ys, H, d, N, T, B, batch_major != 0, dw_ih, dw_hh, db, threads,
               pool_for(threads));
}
#endif

}  // extern "C"
