// oneDNN's LSTM primitive timed alone (no JAX): how fast the field's CPU RNN
// library runs one LSTM layer on this machine, before any jax.ffi binding.
//
// Build and run (the registry's onednn wheel is a SYCL build: it needs its
// Intel runtimes, ~600 MB, and the OpenCL CPU driver named explicitly):
//
//   pip install onednn==2026.1.0 onednn-devel==2026.1.0   # pulls the runtimes
//   V=$VIRTUAL_ENV
//   g++ -O2 -std=c++17 benchmarks/onednn/lstm_probe.cc -I$V/include -L$V/lib \
//       -ldnnl -Wl,--disable-new-dtags,-rpath,$V/lib -o /tmp/lstm_probe
//   OCL_ICD_FILENAMES=$V/lib/libintelocl.so /tmp/lstm_probe 32 128 128 256 1 0
//
// Arguments: N T I H [any_weights (1: let oneDNN pick the weight layout and
// reorder ours into it on every call)] [training (1: forward_training with
// its workspace)]. Prints the median of 15 calls and the implementation
// oneDNN chose. Without OCL_ICD_FILENAMES the engine cannot be created
// ("SYCL cpu devices queried but not found").
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <vector>
#include <random>
#include <algorithm>
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

int main(int argc, char** argv) {
  int N = atoi(argv[1]), T = atoi(argv[2]), I = atoi(argv[3]), H = atoi(argv[4]);
  bool any_w = argc > 5 && atoi(argv[5]);
  bool train = argc > 6 && atoi(argv[6]);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  auto md = [](memory::dims d, tag t) { return memory::desc(d, dt::f32, t); };
  memory::desc src_layer = md({T, N, I}, tag::tnc);
  memory::desc src_iter = md({1, 1, N, H}, tag::ldnc);
  memory::desc w_layer_plain = md({1, 1, I, 4, H}, tag::ldigo);
  memory::desc w_iter_plain = md({1, 1, H, 4, H}, tag::ldigo);
  memory::desc w_layer = any_w ? md({1, 1, I, 4, H}, tag::any) : w_layer_plain;
  memory::desc w_iter = any_w ? md({1, 1, H, 4, H}, tag::any) : w_iter_plain;
  memory::desc bias = md({1, 1, 4, H}, tag::ldgo);
  memory::desc dst_layer = md({T, N, H}, tag::tnc);
  auto pk = train ? prop_kind::forward_training : prop_kind::forward_inference;
  lstm_forward::primitive_desc pd(eng, pk, rnn_direction::unidirectional_left2right,
      src_layer, src_iter, src_iter, w_layer, w_iter, bias, dst_layer, src_iter, src_iter);
  std::vector<float> x(T*N*I), wl(I*4*H), wi(H*4*H), b(4*H), h0(N*H), y(T*N*H), hT(N*H), cT(N*H);
  std::mt19937 g(0); std::normal_distribution<float> nd(0, 0.1f);
  for (auto* v : {&x, &wl, &wi, &b}) for (auto& e : *v) e = nd(g);
  memory mx(src_layer, eng, x.data()), mh0(src_iter, eng, h0.data()), mc0(src_iter, eng, h0.data());
  memory mwl_p(w_layer_plain, eng, wl.data()), mwi_p(w_iter_plain, eng, wi.data());
  memory mb(bias, eng, b.data()), my(dst_layer, eng, y.data()), mhT(src_iter, eng, hT.data()), mcT(src_iter, eng, cT.data());
  memory mwl = mwl_p, mwi = mwi_p;
  memory ws;
  if (train) ws = memory(pd.workspace_desc(), eng);
  lstm_forward prim(pd);
  auto run = [&]() {
    if (any_w) {
      mwl = memory(pd.weights_layer_desc(), eng); mwi = memory(pd.weights_iter_desc(), eng);
      reorder(mwl_p, mwl).execute(s, mwl_p, mwl); reorder(mwi_p, mwi).execute(s, mwi_p, mwi);
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC_LAYER, mx}, {DNNL_ARG_SRC_ITER, mh0}, {DNNL_ARG_SRC_ITER_C, mc0},
      {DNNL_ARG_WEIGHTS_LAYER, mwl}, {DNNL_ARG_WEIGHTS_ITER, mwi}, {DNNL_ARG_BIAS, mb},
      {DNNL_ARG_DST_LAYER, my}, {DNNL_ARG_DST_ITER, mhT}, {DNNL_ARG_DST_ITER_C, mcT}};
    if (train) args[DNNL_ARG_WORKSPACE] = ws;
    prim.execute(s, args); s.wait();
  };
  for (int i = 0; i < 3; i++) run();
  std::vector<double> ts;
  for (int i = 0; i < 15; i++) { auto t0 = std::chrono::steady_clock::now(); run();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()); }
  std::sort(ts.begin(), ts.end());
  printf("N=%d T=%d I=%d H=%d any=%d train=%d: %.2f ms (median); impl %s ws %zu bytes\n", N, T, I, H, any_w, train, ts[7],
         pd.impl_info_str(), train ? pd.workspace_desc().get_size() : 0);
  return 0;
}
