// The thread team's joining rules, without XLA: helpers that start at once,
// helpers that start only after the call would have finished (a busy pool),
// a "pool" that runs tasks inline, and a helper started on the caller's CPU
// must all give the single thread's bits. Built and run by
// tests/test_native.py (g++ -I rnn_zoo/native); prints one line per check,
// "<name> ok" or "<name> FAILED".
#include "rnn.cc"

#include <cstdio>
#include <string>
#include <thread>

namespace {

int failures = 0;

void check(const std::string& name, bool ok) {
  std::printf("%s %s\n", name.c_str(), ok ? "ok" : "FAILED");
  failures += !ok;
}

float uniform() { return rand() / static_cast<float>(RAND_MAX) - 0.5f; }

}  // namespace

int main() {
  const int64_t B = 8, T = 50, H = 64, I = 24;
  std::vector<float> w(H * 4 * H), b(4 * H, 0.1f), xp(T * B * 4 * H), h0(B * H),
      c0(B * H), cl(B * H), w_ih(I * 4 * H), x(T * B * I);
  for (auto& v : w) v = uniform() * 0.2f;
  for (auto& v : xp) v = uniform();
  for (auto& v : w_ih) v = uniform() * 0.2f;
  for (auto& v : x) v = uniform();

  Schedule now = [](std::function<void()> t) { std::thread(std::move(t)).detach(); };
  Schedule late = [](std::function<void()> t) {
    std::thread([t] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      t();
    }).detach();
  };
  Schedule inline_pool = [](std::function<void()> t) { t(); };
  // A helper started on the caller's CPU moves off it for the call and gets
  // its own affinity back afterwards.
  static std::atomic<int> restored{0};
  Schedule on_callers_cpu = [](std::function<void()> t) {
    const int cpu = sched_getcpu();
    std::thread([t, cpu] {
      cpu_set_t one, before, after;
      sched_getaffinity(0, sizeof(before), &before);
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      sched_setaffinity(0, sizeof(one), &one);        // onto the caller's CPU
      sched_setaffinity(0, sizeof(before), &before);  // free again, still there
      t();
      sched_getaffinity(0, sizeof(after), &after);
      restored += CPU_EQUAL(&before, &after);
    }).detach();
  };

  // The single thread's bits: the recurrence over xp, and the one that
  // projects x itself (w_ih).
  std::vector<float> ref(T * B * H), ref_x(T * B * H);
  forward(w.data(), b.data(), xp.data(), nullptr, 0, h0.data(), c0.data(), T, B, H, false,
          ref.data(), nullptr, nullptr, cl.data(), 1, nullptr);
  forward(w.data(), b.data(), x.data(), w_ih.data(), I, h0.data(), c0.data(), T, B, H,
          false, ref_x.data(), nullptr, nullptr, cl.data(), 1, nullptr);

  const std::pair<const char*, const Schedule*> pools[] = {
      {"now", &now}, {"late", &late}, {"inline", &inline_pool},
      {"callers_cpu", &on_callers_cpu}};
  for (const auto& [name, schedule] : pools) {
    std::vector<float> y(T * B * H), y_x(T * B * H);
    forward(w.data(), b.data(), xp.data(), nullptr, 0, h0.data(), c0.data(), T, B, H,
            false, y.data(), nullptr, nullptr, cl.data(), 2, *schedule);
    forward(w.data(), b.data(), x.data(), w_ih.data(), I, h0.data(), c0.data(), T, B, H,
            false, y_x.data(), nullptr, nullptr, cl.data(), 2, *schedule);
    check(std::string(name) + "_projected_input_same_bits", y == ref);
    check(std::string(name) + "_fused_projection_same_bits", y_x == ref_x);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the late helpers leave
  check("helpers_on_callers_cpu_get_their_affinity_back", restored == 2);
  return failures == 0 ? 0 : 1;
}
