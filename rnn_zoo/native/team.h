// The thread team: the calling thread and tasks on XLA's intra-op pool, the
// hidden units split between them in 16-unit groups, one barrier per step.
//
// Part of the native kernels: rnn.cc includes the headers in order (one
// translation unit); their code has internal linkage (anonymous namespace).

#pragma once

namespace {

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

}  // namespace
