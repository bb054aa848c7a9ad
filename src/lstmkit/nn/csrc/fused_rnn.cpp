// lstmkit's fused CPU kernels: one direction of an LSTM or GRU layer, every variant of
// SPEC-variants.md (recurrent-dropout mask, zoneout, layer norm, peepholes, projection,
// lengths), forward and a hand-written backward through time; and the sLSTM's (slstm.h,
// included below so that the extension stays one module).
//
// LSTM forward in float32 without a projection: W_hh is packed once per call and the batch
// rows are split over the threads once; each thread runs every step on its own rows (our own
// register-tiled product, which also prefetches the step's xw, then the gate pass), with no
// synchronisation between steps. Otherwise, per step: one matrix product h_{t-1} W_hh^T
// (oneDNN, on a weight packed once per call in float32), then one multithreaded pass over
// the batch rows computing the gates (layer-norm statistics, peepholes, zoneout and lengths
// included); with a projection, a second product and a short pass. Backward runs the steps in reverse with one product per step (two with a
// projection); the weight gradients are one product over all steps at the end.
//
// Types: T is the type of the gate math and the states (float or double), M the type of the
// matrix products, inputs and outputs (float, double or bfloat16 with T = float).
// ATen and the pybind tensor casters only (not torch/extension.h): builds about a third faster
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <atomic>
#include <mutex>
#include <string>
#include <optional>
#include <unordered_map>
#include <vector>

using at::Tensor;
using OptT = std::optional<Tensor>;

// Portability: the kernel builds with GCC and clang (Linux x86-64 and aarch64, macOS) and
// with MSVC (Windows). Compiler-specific constructs sit behind these macros, each with a
// plain fallback: loop hints, prefetch, bit casts and the vector extension that our own
// small product needs (without it the product is ATen's).
#if defined(__clang__)
#define IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define IVDEP _Pragma("GCC ivdep")
#elif defined(_MSC_VER)
#define IVDEP __pragma(loop(ivdep))
#else
#define IVDEP
#endif
#if defined(__GNUC__) || defined(__clang__)
#define LSTMKIT_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#define LSTMKIT_VECTOR_EXT 1
#else
#define LSTMKIT_PREFETCH(p) ((void)(p))
#define LSTMKIT_VECTOR_EXT 0
#endif

// oneDNN's matmul as ATen wraps it (exported by libtorch_cpu, used by torch for its bf16
// products). ATen allows it only where oneDNN's bf16 path runs (torch's
// mkldnn_bf16_device_check: AVX-512 BW/VL/DQ, AVX-NE-CONVERT or ARM BF16), and raises
// elsewhere, float32 included; so it is called only when Python, having asked
// torch.ops.mkldnn._is_mkldnn_bf16_supported(), says so through set_products(). Declared
// weak where the object format has weak symbols (ELF), so that a torch without the entry
// loads and falls back to at::mm; elsewhere (Mach-O, PE/COFF) it is not used at all.
#if defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define LSTMKIT_DNNL_MATMUL 1
namespace at::native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result,
                             float beta, float alpha) __attribute__((weak));
}
#else
#define LSTMKIT_DNNL_MATMUL 0
#endif

namespace {

// IVDEP (above): every loop over units k touches only index k of each row (plus constant
// offsets of whole gate blocks), so there are no dependencies between iterations; this lets
// the compiler vectorise without runtime alias checks it would otherwise give up on.

constexpr double kEps = 1e-5;

inline int32_t float_bits(float x) {
  int32_t i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
inline float bits_float(int32_t i) {
  float x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}

// exp for float without library calls, so the gate loops vectorise: 2^k * e^r with
// |r| <= ln2/2 and a degree-7 Taylor polynomial (relative error below float's epsilon).
// k is rounded by adding 1.5 * 2^23 (std::floor would stop the vectoriser), and 2^k is
// built from the bits of that sum.
inline float fexp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float big = x * 1.4426950408889634f + 12582912.0f;
  const float k = big - 12582912.0f;
  const float r = std::fma(k, 2.12194440e-4f, std::fma(k, -0.693359375f, x));
  float p = 1.0f / 5040.0f;  // Horner with fused multiply-adds (one instruction a term)
  p = std::fma(p, r, 1.0f / 720.0f);
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const int32_t bits = (float_bits(big) - 0x4B400000 + 127) << 23;
  return p * bits_float(bits);
}
inline float sigm(float x) { return 1.0f / (1.0f + fexp(-x)); }
inline float tanh_(float x) { return 1.0f - 2.0f / (1.0f + fexp(2.0f * x)); }
inline double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh_(double x) { return std::tanh(x); }

// Internal buffers of size T*B*... are taken from a small cache of freed blocks: a training
// loop asks for the same sizes at every step, and fresh large blocks from malloc come as
// new pages (the kernel zeroes them on first touch), which cost as much as the arithmetic
// at these sizes. Only buffers that never reach the user come from here.
struct BlockCache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> blocks;
  size_t cached = 0;
};
// 64-byte aligned blocks (n a multiple of 4096); MSVC has no std::aligned_alloc.
inline void* block_alloc(size_t n) {
#if defined(_MSC_VER)
  return _aligned_malloc(n, 64);
#else
  return std::aligned_alloc(64, n);
#endif
}
inline void block_free(void* p) {
#if defined(_MSC_VER)
  _aligned_free(p);
#else
  std::free(p);
#endif
}
constexpr size_t kCacheLimit = size_t(1) << 30;
constexpr size_t kCacheMin = size_t(1) << 18;
BlockCache& block_cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: blocks may die at exit
  return *c;
}
void give_back(void* p, size_t n) {
  BlockCache& c = block_cache();
  {
    std::lock_guard<std::mutex> g(c.mu);
    if (c.cached + n <= kCacheLimit) {
      c.blocks[n].push_back(p);
      c.cached += n;
      return;
    }
  }
  block_free(p);
}
Tensor work(at::IntArrayRef sizes, const at::TensorOptions& o) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  size_t n = static_cast<size_t>(numel) * c10::elementSize(o.dtype().toScalarType());
  if (n < kCacheMin) return at::empty(sizes, o);
  n = (n + 4095) / 4096 * 4096;
  void* p = nullptr;
  {
    BlockCache& c = block_cache();
    std::lock_guard<std::mutex> g(c.mu);
    auto it = c.blocks.find(n);
    if (it != c.blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      c.cached -= n;
    }
  }
  if (p == nullptr) p = block_alloc(n);
  TORCH_CHECK(p != nullptr, "fused kernel: out of memory allocating ", n, " bytes");
  return at::from_blob(p, sizes, [n](void* q) { give_back(q, n); }, o);
}
// Frees every cached block (lstmkit.nn.fused.empty_cache()).
int64_t empty_cache() {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> g(c.mu);
  int64_t freed = static_cast<int64_t>(c.cached);
  for (auto& kv : c.blocks)
    for (void* p : kv.second) block_free(p);
  c.blocks.clear();
  c.cached = 0;
  return freed;
}

// Which library products the kernel may use, set from Python (lstmkit.nn.cpu) after asking
// torch what this CPU supports; both off until then. dnnl_matmul: ATen's oneDNN matmul entry
// (float32 and bfloat16); dnnl_packed: oneDNN's linear on a weight packed once per call
// (float32; registered ops, found through the dispatcher). Off, every product is at::mm.
std::atomic<bool> g_dnnl_matmul{false}, g_dnnl_packed{false};

bool dnnl_matmul_linked() {
#if LSTMKIT_DNNL_MATMUL
  return at::hasMKLDNN() && &at::native::mkldnn_matmul != nullptr;
#else
  return false;
#endif
}

// out = a @ b (out preallocated; a, b may be transposed views)
inline void gemm(const Tensor& a, const Tensor& b, Tensor& out) {
#if LSTMKIT_DNNL_MATMUL
  if (g_dnnl_matmul.load(std::memory_order_relaxed) && out.scalar_type() != at::kDouble) {
    at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
    return;
  }
#endif
  at::mm_out(out, a, b);
}

// The recurrent product with the weight packed once per call: oneDNN's linear on a weight
// reordered into its blocked layout for this batch size (the ops torch registers for its
// compiled inference graphs). A plain matmul repacks the weight at every step, which costs
// a fifth to a third of the per-step product at these sizes. Found through the dispatcher;
// unavailable (nullptr) on a torch without them, where gemm() is used.
using LinearFn = Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                        c10::string_view, c10::List<std::optional<at::Scalar>>,
                        std::optional<c10::string_view>);
using ReorderFn = Tensor(const Tensor&, std::optional<int64_t>);
struct PackedOps {
  c10::TypedOperatorHandle<ReorderFn> reorder;
  c10::TypedOperatorHandle<LinearFn> linear;
};
const PackedOps* find_packed_ops() {
  static const PackedOps* ops = []() -> const PackedOps* {
    if (!at::hasMKLDNN()) return nullptr;
    try {
      auto& d = c10::Dispatcher::singleton();
      auto r = d.findSchema({"mkldnn::_reorder_linear_weight", ""});
      auto l = d.findSchema({"mkldnn::_linear_pointwise", ""});
      if (!r || !l) return nullptr;
      return new PackedOps{r->typed<ReorderFn>(), l->typed<LinearFn>()};
    } catch (const std::exception&) {
      return nullptr;
    }
  }();
  return ops;
}
const PackedOps* packed_ops() {
  return g_dnnl_packed.load(std::memory_order_relaxed) ? find_packed_ops() : nullptr;
}

// Sets the products (see g_dnnl_matmul); returns those in use, each only if this build and
// torch have it: "dnnl_matmul", "dnnl_packed".
std::vector<std::string> set_products(bool dnnl_matmul, bool dnnl_packed) {
  g_dnnl_matmul = dnnl_matmul && dnnl_matmul_linked();
  g_dnnl_packed = dnnl_packed && find_packed_ops() != nullptr;
  std::vector<std::string> used;
  if (g_dnnl_matmul) used.emplace_back("dnnl_matmul");
  if (g_dnnl_packed) used.emplace_back("dnnl_packed");
  return used;
}

// x @ w^T for every step of one call, with w (N, K) packed once when the ops exist (float32).
struct StepProduct {
  Tensor w_t, packed;
  const PackedOps* ops = nullptr;
  StepProduct(const Tensor& w, int64_t batch) : w_t(w.t()) {
    if (w.scalar_type() == at::kFloat) ops = packed_ops();
    if (ops != nullptr) {
      try {
        packed = ops->reorder.call(w.contiguous(), batch);
      } catch (const std::exception&) {
        ops = nullptr;
      }
    }
  }
  // returns x @ w^T: into out, or a fresh tensor from the packed product
  Tensor operator()(const Tensor& x, Tensor& out) const {
    if (ops == nullptr) {
      gemm(x, w_t, out);
      return out;
    }
    return ops->linear.call(x, packed, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(),
                            std::nullopt);
  }
};

// ---------------------------------------------------- our own small product (float32)
// C (m, N) = A (m, K) @ W^T for W (N, K), W packed once per call into panels of NR = 2 * VW
// columns (panel j holds W[NR j .. NR j + NR - 1][k] for every k, zero-padded past N), VW
// being the floats of one vector register of the instruction set this file is built for.
// Register tiles of MR rows x NR columns (2 MR accumulators, two B vectors and a broadcast
// must fit the register file: 32 registers with AVX-512 or NEON, 16 with AVX/AVX2 or
// SSE). Used for the per-step recurrent product, where a library call's fixed cost per step
// is a large part of the product at these sizes, and where each thread can then run its own
// rows through all the steps.
#if LSTMKIT_VECTOR_EXT
#if defined(__AVX512F__)
constexpr int VW = 16, MR = 8;
#elif defined(__AVX__)
constexpr int VW = 8, MR = 6;
#elif defined(__aarch64__) || defined(__ARM_NEON)
constexpr int VW = 4, MR = 8;
#else
constexpr int VW = 4, MR = 6;
#endif
constexpr int NR = 2 * VW;
typedef float vecf __attribute__((vector_size(VW * 4)));
typedef float vecf_u __attribute__((vector_size(VW * 4), aligned(4)));

template <typename M>
constexpr bool own_gemm_ok() {
  return std::is_same<M, float>::value;
}

struct PackedB {
  int64_t N, K, panels;
  std::vector<vecf> data;  // panels * K * 2 vectors
  explicit PackedB(const Tensor& w_in) {
    const Tensor w = w_in.contiguous();
    N = w.size(0);
    K = w.size(1);
    panels = (N + NR - 1) / NR;
    data.assign(static_cast<size_t>(panels * K * 2), vecf{});
    const float* wp = w.data_ptr<float>();
    float* d = reinterpret_cast<float*>(data.data());
    for (int64_t j = 0; j < panels; ++j)
      for (int64_t n = NR * j; n < std::min<int64_t>(N, NR * j + NR); ++n)
        for (int64_t k = 0; k < K; ++k) d[(j * K + k) * NR + (n - NR * j)] = wp[n * K + k];
  }
};

template <int R>
inline void tile(const float* A, int64_t lda, const vecf* Bp, int64_t K, float* C, int64_t ldc,
                 int64_t ncols) {
  vecf acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = vecf{};
  for (int64_t k = 0; k < K; ++k) {
    const vecf b0 = Bp[2 * k], b1 = Bp[2 * k + 1];
    for (int i = 0; i < R; ++i) {
      const float a = A[i * lda + k];
      acc0[i] += a * b0;
      acc1[i] += a * b1;
    }
  }
  if (ncols == NR) {
    for (int i = 0; i < R; ++i) {
      *reinterpret_cast<vecf_u*>(C + i * ldc) = acc0[i];
      *reinterpret_cast<vecf_u*>(C + i * ldc + VW) = acc1[i];
    }
  } else {
    for (int i = 0; i < R; ++i) {
      float row[NR];
      std::memcpy(row, &acc0[i], sizeof(vecf));
      std::memcpy(row + VW, &acc1[i], sizeof(vecf));
      std::copy(row, row + ncols, C + i * ldc);
    }
  }
}

// The last r < MR rows of a panel: tile<r> for r in [1, MR).
template <int R = MR - 1>
inline void tail_tile(int r, const float* A, int64_t lda, const vecf* Bp, int64_t K, float* C,
                      int64_t ldc, int64_t ncols) {
  if constexpr (R >= 1) {
    if (r == R) return tile<R>(A, lda, Bp, K, C, ldc, ncols);
    tail_tile<R - 1>(r, A, lda, Bp, K, C, ldc, ncols);
  }
}

// C rows [0, m) of A (m, K) @ W^T; A rows lda apart, C rows ldc apart. The product is
// bound by arithmetic, so it also pulls [pf, pf + pf_bytes) into the L2 cache, a few lines
// after each tile: the step's input projections, which the gate pass that follows would
// otherwise stream from memory (half of that pass's time at these sizes).
inline void gemm_rows(const float* A, int64_t lda, const PackedB& w, float* C, int64_t ldc,
                      int64_t m, const char* pf = nullptr, int64_t pf_bytes = 0) {
  const int64_t K = w.K;
  const int64_t tiles = w.panels * ((m + MR - 1) / MR), lines = pf_bytes / 64;
  const int64_t per_tile = pf ? (lines + tiles - 1) / std::max<int64_t>(tiles, 1) : 0;
  int64_t next = 0;  // next line to prefetch
  auto prefetch = [&]() {
    for (int64_t e = std::min(lines, next + per_tile); next < e; ++next)
      LSTMKIT_PREFETCH(pf + next * 64);
  };
  for (int64_t j = 0; j < w.panels; ++j) {
    const vecf* Bp = w.data.data() + j * K * 2;
    const int64_t n0 = NR * j, nc = std::min<int64_t>(NR, w.N - n0);
    int64_t i = 0;
    for (; i + MR <= m; i += MR) {
      tile<MR>(A + i * lda, lda, Bp, K, C + i * ldc + n0, ldc, nc);
      prefetch();
    }
    prefetch();
    if (m > i) tail_tile(static_cast<int>(m - i), A + i * lda, lda, Bp, K, C + i * ldc + n0, ldc, nc);
  }
}

#else  // no vector extension (MSVC): the recurrent product is always ATen's
template <typename M>
constexpr bool own_gemm_ok() {
  return false;
}
#endif

inline Tensor dense_mm(const Tensor& a, const Tensor& b) {
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  gemm(a, b, out);
  return out;
}

// x (N, in) @ w^T + b for w (out, in), into a block of the buffer cache: the input projection
// of all steps is tens of MB, and a fresh block of that size costs about as many page faults
// (first touch) as the product costs arithmetic; a forward pass frees it when done with xw.
Tensor mm_bias(const Tensor& x, const Tensor& w, const OptT& b) {
  Tensor y = work({x.size(0), w.size(0)}, x.options());
  gemm(x, w.t(), y);
  if (b.has_value() && b->defined()) y.add_(b->to(y.scalar_type()));
  return y;
}

template <typename X>
inline X* ptr(const Tensor& t) {
  return t.defined() ? t.data_ptr<X>() : nullptr;
}

// A float tensor as a contiguous tensor of type s, or an undefined tensor.
inline Tensor as(const OptT& t, at::ScalarType s) {
  return (t.has_value() && t->defined()) ? t->to(s).contiguous() : Tensor();
}

// Zoneout weights (T, B, n), possibly expanded with zero strides: the innermost stride must
// be 1 for the loops, other strides are kept. No zoneout is weight 0 (the loops then need no
// branch, which would stop the vectoriser).
inline Tensor zone(const OptT& t, at::ScalarType s, int64_t T, int64_t B, int64_t n) {
  if (!t.has_value() || !t->defined()) return at::zeros({n}, at::TensorOptions().dtype(s)).expand({T, B, n});
  Tensor z = t->to(s).expand({T, B, n});
  return z.stride(2) == 1 ? z : z.contiguous();
}

inline int64_t grain(int64_t width) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(width, 1)); }

// Layer-norm statistics of v[0..n): writes (v - mean) * rstd to vhat, returns rstd.
template <typename T>
inline T ln_stats(const T* v, T* vhat, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += v[k];
  const T mean = s / n;
  T q = 0;
#pragma omp simd reduction(+ : q)
  for (int64_t k = 0; k < n; ++k) {
    const T d = v[k] - mean;
    q += d * d;
  }
  const T rstd = T(1) / std::sqrt(q / n + T(kEps));
  IVDEP
  for (int64_t k = 0; k < n; ++k) vhat[k] = (v[k] - mean) * rstd;
  return rstd;
}

// Mean (into mean) and 1 / sqrt(var + eps) of v[0..n), the same sums as ln_stats.
template <typename T>
inline T ln_moments(const T* v, int64_t n, T& mean) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += v[k];
  mean = s / n;
  const T mu = mean;
  T q = 0;
#pragma omp simd reduction(+ : q)
  for (int64_t k = 0; k < n; ++k) {
    const T d = v[k] - mu;
    q += d * d;
  }
  return T(1) / std::sqrt(q / n + T(kEps));
}

// Backward of y = xhat * g (+ b): dx = rstd * (g dy - mean(g dy) - xhat mean(g dy xhat)).
template <typename T, typename O>
inline void ln_back(const T* dy, const T* xhat, const T* g, T rstd, O* dx, int64_t n) {
  T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t k = 0; k < n; ++k) {
    const T gd = g[k] * dy[k];
    s1 += gd;
    s2 += gd * xhat[k];
  }
  s1 /= n;
  s2 /= n;
  IVDEP
  for (int64_t k = 0; k < n; ++k) dx[k] = static_cast<O>(rstd * (g[k] * dy[k] - s1 - xhat[k] * s2));
}

template <typename X>
inline void zero_row(X* p, int64_t n) {
  if (p != nullptr) std::fill(p, p + n, X(0));
}

// A saved buffer, or undefined where Python passed an empty placeholder.
inline Tensor S(const std::vector<Tensor>& saved, size_t i) {
  return saved.at(i).numel() > 0 ? saved[i] : Tensor();
}

struct Dims {
  int64_t T, B, H, P, G;
};

inline Dims dims(const Tensor& xw, const Tensor& h0, int64_t gates) {
  TORCH_CHECK(xw.dim() == 3 && xw.size(2) % gates == 0, "xw must be (T, B, ", gates, "*H), got ",
              xw.sizes());
  return Dims{xw.size(0), xw.size(1), xw.size(2) / gates, h0.size(1), xw.size(2)};
}

inline bool active(const int64_t* len, int64_t b, int64_t t) { return len == nullptr || t < len[b]; }

// ---------------------------------------------------------------------------------- LSTM
template <typename T, typename M>
std::vector<Tensor> lstm_fwd(const Tensor& xw_in, const Tensor& h0_in, const Tensor& c0_in,
                             const Tensor& w_hh, const OptT& b_hh_, const OptT& w_hr_,
                             const OptT& peep_, const OptT& lnw_, const OptT& lnwc_,
                             const OptT& lnbc_, const OptT& rd_, const OptT& zh_, const OptT& zc_,
                             const OptT& len_, bool save) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const Dims d = dims(xw_in, h0_in, 4);
  const int64_t Tn = d.T, B = d.B, H = d.H, P = d.P, G = d.G;
  const bool proj = w_hr_.has_value() && w_hr_->defined();
  const bool ln = lnw_.has_value() && lnw_->defined();
  const bool lnc = lnwc_.has_value() && lnwc_->defined();
  auto oT = xw_in.options().dtype(sT);
  auto oM = xw_in.options().dtype(sM);
  const Tensor xw = xw_in.contiguous();
  Tensor b_hh = b_hh_.has_value() && b_hh_->defined() ? as(b_hh_, sT) : at::zeros({G}, oT);
  Tensor peep = peep_.has_value() && peep_->defined() ? as(peep_, sT) : at::zeros({3, H}, oT);
  Tensor lnw = as(lnw_, sT), lnwc = lnc ? as(lnwc_, sT) : at::ones({H}, oT);
  Tensor lnbc = lnc && lnbc_.has_value() && lnbc_->defined() ? as(lnbc_, sT) : at::zeros({H}, oT);
  Tensor rd = as(rd_, sT), zh = zone(zh_, sT, Tn, B, P), zc = zone(zc_, sT, Tn, B, H);
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();
  Tensor w_hr_t = proj ? w_hr_->t() : Tensor();

  // Without save (inference) the per-step buffers hold one step (two for the states and
  // the product input, which alternate), so nothing of size T*B*4H is allocated.
  const int64_t NS = save ? Tn + 1 : 2, NH = save ? Tn : 2, NG = save ? Tn : 1;
  Tensor out = at::empty({Tn, B, P}, oM);
  Tensor hs = work({NS, B, P}, oT);
  Tensor cs = work({NS, B, H}, oT);
  Tensor HD = work({NH, B, P}, oM);      // (masked) h_{t-1}: the per-step product's input
  Tensor gates = work({NG, B, G}, oT);   // i, f, g, o
  Tensor ctil = work({NG, B, H}, oT);    // c~
  Tensor Ahat = ln ? work({NG, B, G}, oT) : Tensor();
  Tensor rstd_h = ln ? at::empty({NG, B}, oT) : Tensor();
  Tensor chat = lnc ? work({NG, B, H}, oT) : Tensor();
  Tensor rstd_c = lnc ? at::empty({NG, B}, oT) : Tensor();
  Tensor Hpre = proj ? work({NG, B, H}, oM) : Tensor();
  // row of step t, batch row b in: states (h_{t-1}, c_{t-1}), product input, saved buffers
  auto si = [&](int64_t t, int64_t b) { return (t % NS) * B + b; };
  auto hi = [&](int64_t t, int64_t b) { return (t % NH) * B + b; };
  auto gi = [&](int64_t t, int64_t b) { return (t % NG) * B + b; };
  Tensor A = at::empty({B, G}, oM);                       // h W_hh^T of one step
  Tensor Hp = proj ? at::empty({B, P}, oM) : Tensor();    // projected h~ of one step
  Tensor abuf = ln ? at::empty({B, G}, oT) : Tensor();    // A in T for the statistics
  hs[0].copy_(h0_in);
  cs[0].copy_(c0_in);
  if (rd.defined()) HD[0].copy_(hs[0] * rd);
  else HD[0].copy_(hs[0]);

  const M* xp = xw.data_ptr<M>();
  const T *bp = b_hh.data_ptr<T>(), *wci = peep.data_ptr<T>(), *wcf = wci + H, *wco = wci + 2 * H;
  const T *lg = ptr<T>(lnw), *lgc = ptr<T>(lnwc), *lbc = ptr<T>(lnbc), *rdp = ptr<T>(rd);
  const T *zhp = ptr<T>(zh), *zcp = ptr<T>(zc);
  const int64_t zh0 = zh.stride(0), zh1 = zh.stride(1), zc0 = zc.stride(0), zc1 = zc.stride(1);
  const int64_t* lp = ptr<int64_t>(len);
  M *outp = out.data_ptr<M>(), *hdp = HD.data_ptr<M>(), *Ap = A.data_ptr<M>();
  M *hprep = ptr<M>(Hpre), *hpp = ptr<M>(Hp);
  T *hsp = hs.data_ptr<T>(), *csp = cs.data_ptr<T>(), *gp = gates.data_ptr<T>();
  T *ctp = ctil.data_ptr<T>(), *ahp = ptr<T>(Ahat), *rhp = ptr<T>(rstd_h), *chp = ptr<T>(chat);
  T *rcp = ptr<T>(rstd_c), *abp = ptr<T>(abuf);

  // h_t from h~ (zoneout), output and next step's product input; r = t*B + b.
  auto finish_h = [&](int64_t t, int64_t b, const T* ht) {
    const int64_t r = t * B + b;
    const T* hprev = hsp + si(t, b) * P;
    T* hn = hsp + si(t + 1, b) * P;
    M* o = outp + r * P;
    const T* z = zhp + t * zh0 + b * zh1;
    IVDEP
    for (int64_t k = 0; k < P; ++k) {
      const T v = z[k] * hprev[k] + (T(1) - z[k]) * ht[k];
      hn[k] = v;
      o[k] = static_cast<M>(v);
    }
    if (t + 1 < Tn) {
      M* hd = hdp + hi(t + 1, b) * P;
      if (rdp) {
        IVDEP
        for (int64_t k = 0; k < P; ++k) hd[k] = static_cast<M>(hn[k] * rdp[b * P + k]);
      } else {
        IVDEP
        for (int64_t k = 0; k < P; ++k) hd[k] = static_cast<M>(hn[k]);
      }
    }
  };
  auto carry = [&](int64_t t, int64_t b) {  // a padded step: state unchanged, output 0
    const int64_t r = t * B + b;
    const T *hp = hsp + si(t, b) * P, *cp = csp + si(t, b) * H;
    std::copy(hp, hp + P, hsp + si(t + 1, b) * P);
    std::copy(cp, cp + H, csp + si(t + 1, b) * H);
    zero_row(outp + r * P, P);
    if (t + 1 < Tn) {
      M* hd = hdp + hi(t + 1, b) * P;
      if (rdp) {
        IVDEP
        for (int64_t k = 0; k < P; ++k) hd[k] = static_cast<M>(hp[k] * rdp[b * P + k]);
      } else {
        IVDEP
        for (int64_t k = 0; k < P; ++k) hd[k] = static_cast<M>(hp[k]);
      }
    }
  };

  std::vector<Tensor> HDt = HD.unbind(0), Hpret = proj ? Hpre.unbind(0) : std::vector<Tensor>();
  // the gate pass of step t for batch rows [b0, b1) (A holds their h W_hh^T); tmp: H values
  auto gate_rows = [&](int64_t t, int64_t b0, int64_t b1, T* tmpp) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = t * B + b, q = gi(t, b);
      if (!active(lp, b, t)) {
        carry(t, b);
        zero_row(gp + q * G, G);
        zero_row(ctp + q * H, H);
        zero_row(ahp ? ahp + q * G : nullptr, G);
        zero_row(chp ? chp + q * H : nullptr, H);
        zero_row(hprep ? hprep + q * H : nullptr, H);
        continue;
      }
      const M* x = xp + r * G;
      const M* a = Ap + b * G;
      T* g = gp + q * G;
      if (ln) {
        const T* av;  // A's row in T (no copy when the products are in T already)
        if constexpr (std::is_same<M, T>::value) {
          av = reinterpret_cast<const T*>(a);
        } else {
          T* ab = abp + b * G;
          IVDEP
          for (int64_t k = 0; k < G; ++k) ab[k] = static_cast<T>(a[k]);
          av = ab;
        }
        T mean;
        const T rstd = ln_moments(av, G, mean);
        rhp[q] = rstd;
        T* ah = ahp + q * G;
        IVDEP
        for (int64_t k = 0; k < G; ++k) {
          const T v = (av[k] - mean) * rstd;
          ah[k] = v;
          g[k] = static_cast<T>(x[k]) + v * lg[k] + bp[k];
        }
      } else {
        IVDEP
        for (int64_t k = 0; k < G; ++k)
          g[k] = static_cast<T>(x[k]) + static_cast<T>(a[k]) + bp[k];
      }
      const T* cp = csp + si(t, b) * H;
      T* ct = ctp + q * H;
      IVDEP
      for (int64_t k = 0; k < H; ++k) {
        const T c = cp[k];
        const T ig = sigm(g[k] + wci[k] * c), fg = sigm(g[H + k] + wcf[k] * c);
        const T gg = tanh_(g[2 * H + k]);
        g[k] = ig;
        g[H + k] = fg;
        g[2 * H + k] = gg;
        ct[k] = fg * c + ig * gg;
      }
      const T* cn = ct;
      if (lnc) {
        T* ch = chp + q * H;
        rcp[q] = ln_stats(ct, ch, H);
        cn = ch;
      }
      const T* zcr = zcp + t * zc0 + b * zc1;
      T* cnext = csp + si(t + 1, b) * H;
      T* ht = tmpp;
      IVDEP
      for (int64_t k = 0; k < H; ++k) {
        const T og = sigm(g[3 * H + k] + wco[k] * ct[k]);
        g[3 * H + k] = og;
        ht[k] = og * tanh_(cn[k] * lgc[k] + lbc[k]);
        cnext[k] = zcr[k] * cp[k] + (T(1) - zcr[k]) * ct[k];
      }
      if (proj) {
        M* hpre = hprep + q * H;
        IVDEP
        for (int64_t k = 0; k < H; ++k) hpre[k] = static_cast<M>(ht[k]);
      } else {
        finish_h(t, b, ht);
      }
    }
  };
  if (own_gemm_ok<M>() && !proj) {
#if LSTMKIT_VECTOR_EXT
    // float32 without projection: our own product on each thread's rows, so each thread
    // runs the whole recurrence over its share of the batch with no barrier per step
    // (rows are independent), the product's rows staying in the thread's cache.
    const PackedB wp(w_hh);
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (B + MR - 1) / MR));
    const int64_t chunk = ((B + nt - 1) / nt + MR - 1) / MR * MR;
    at::parallel_for(0, nt, 1, [&](int64_t c0, int64_t c1) {
      std::vector<T> tmp(H);
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = std::min(B, c * chunk), b1 = std::min(B, b0 + chunk);
        if (b0 >= b1) continue;
        for (int64_t t = 0; t < Tn; ++t) {
          gemm_rows(reinterpret_cast<const float*>(hdp + hi(t, b0) * P), P, wp,
                    reinterpret_cast<float*>(Ap + b0 * G), G, b1 - b0,
                    reinterpret_cast<const char*>(xp + (t * B + b0) * G),
                    (b1 - b0) * G * static_cast<int64_t>(sizeof(M)));
          gate_rows(t, b0, b1, tmp.data());
        }
      }
    });
#endif
  } else {
    const StepProduct rec(w_hh, B);
    for (int64_t t = 0; t < Tn; ++t) {
      Tensor At = rec(HDt[t % NH], A);
      Ap = At.data_ptr<M>();
      at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
        std::vector<T> tmp(H);
        gate_rows(t, b0, b1, tmp.data());
      });
      if (proj) {
        gemm(Hpret[t % NG], w_hr_t, Hp);
        at::parallel_for(0, B, grain(P), [&](int64_t b0, int64_t b1) {
          std::vector<T> tmp(P);
          for (int64_t b = b0; b < b1; ++b) {
            if (!active(lp, b, t)) continue;
            IVDEP
            for (int64_t k = 0; k < P; ++k) tmp[k] = static_cast<T>(hpp[b * P + k]);
            finish_h(t, b, tmp.data());
          }
        });
      }
    }
  }
  Tensor h_n = hs[Tn % NS].to(sM, false, true), c_n = cs[Tn % NS].to(sM, false, true);
  if (!save) return {out, h_n, c_n};
  return {out, h_n, c_n, hs, cs, HD, gates, ctil, Ahat, rstd_h, chat, rstd_c, Hpre};
}

template <typename T, typename M>
std::vector<Tensor> lstm_bwd(const Tensor& dout_in, const Tensor& dhn, const Tensor& dcn,
                             const std::vector<Tensor>& saved, const Tensor& w_hh,
                             const OptT& w_hr_, const OptT& peep_, const OptT& lnw_,
                             const OptT& lnwc_, const OptT& lnbc_, const OptT& rd_,
                             const OptT& zh_, const OptT& zc_, const OptT& len_,
                             bool need_w) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const Tensor cs = S(saved, 1), HD = S(saved, 2), gates = S(saved, 3), ctil = S(saved, 4);
  const Tensor Ahat = S(saved, 5), rstd_h = S(saved, 6), chat = S(saved, 7);
  const Tensor rstd_c = S(saved, 8), Hpre = S(saved, 9);
  const int64_t Tn = gates.size(0), B = gates.size(1), G = gates.size(2), H = G / 4;
  const int64_t P = HD.size(2);
  const bool proj = w_hr_.has_value() && w_hr_->defined();
  const bool ln = lnw_.has_value() && lnw_->defined();
  const bool lnc = lnwc_.has_value() && lnwc_->defined();
  auto oT = gates.options().dtype(sT);
  auto oM = gates.options().dtype(sM);
  Tensor peep = peep_.has_value() && peep_->defined() ? as(peep_, sT) : at::zeros({3, H}, oT);
  Tensor lnw = as(lnw_, sT), lnwc = lnc ? as(lnwc_, sT) : at::ones({H}, oT);
  Tensor lnbc = lnc && lnbc_.has_value() && lnbc_->defined() ? as(lnbc_, sT) : at::zeros({H}, oT);
  Tensor rd = as(rd_, sT), zh = zone(zh_, sT, Tn, B, P), zc = zone(zc_, sT, Tn, B, H);
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();
  Tensor dout = dout_in.to(sM).contiguous();

  Tensor dX = at::empty({Tn, B, G}, oT);
  const bool sep = ln || sM != sT;
  Tensor dAm = sep ? work({Tn, B, G}, oM) : dX;
  // per-thread sums over steps and rows: db, d ln_weight_hh, d peephole (3H), d ln_c (2H)
  const int64_t W = 2 * G + 5 * H;
  Tensor acc = at::zeros({at::get_num_threads(), W}, oT);
  const bool pp = peep_.has_value() && peep_->defined();
  Tensor DHT = proj ? work({Tn, B, P}, oM) : Tensor();
  Tensor dhpre = proj ? at::empty({B, H}, oM) : Tensor();
  Tensor dhd = at::empty({B, P}, oM);
  Tensor dh = dhn.to(sT).contiguous().clone(), dc = dcn.to(sT).contiguous().clone();

  const T *wci = peep.data_ptr<T>(), *wcf = wci + H, *wco = wci + 2 * H;
  const T *lg = ptr<T>(lnw), *lgc = ptr<T>(lnwc), *lbc = ptr<T>(lnbc), *rdp = ptr<T>(rd);
  const T *zhp = ptr<T>(zh), *zcp = ptr<T>(zc);
  const int64_t zh0 = zh.stride(0), zh1 = zh.stride(1), zc0 = zc.stride(0), zc1 = zc.stride(1);
  const int64_t* lp = ptr<int64_t>(len);
  const T *csp = cs.data_ptr<T>(), *gp = gates.data_ptr<T>(), *ctp = ctil.data_ptr<T>();
  const T *ahp = ptr<T>(Ahat), *rhp = ptr<T>(rstd_h), *chp = ptr<T>(chat), *rcp = ptr<T>(rstd_c);
  const M* doutp = dout.data_ptr<M>();
  T *dXp = dX.data_ptr<T>(), *dhp = dh.data_ptr<T>(), *dcp = dc.data_ptr<T>();
  T* accp = acc.data_ptr<T>();
  M *dAp = dAm.data_ptr<M>(), *dhtp = ptr<M>(DHT), *dhprep = ptr<M>(dhpre);
  M* dhdp = dhd.data_ptr<M>();

  // dh of row b += the recurrent part of the previous (later) step
  auto add_pending = [&](int64_t b, bool pending) {
    if (!pending) return;
    T* dhr = dhp + b * P;
    const M* q = dhdp + b * P;
    if (rdp) {
      IVDEP
      for (int64_t k = 0; k < P; ++k) dhr[k] += static_cast<T>(q[k]) * rdp[b * P + k];
    } else {
      IVDEP
      for (int64_t k = 0; k < P; ++k) dhr[k] += static_cast<T>(q[k]);
    }
  };

  std::vector<Tensor> dAt = dAm.unbind(0), DHTt = proj ? DHT.unbind(0) : std::vector<Tensor>();
  Tensor w_hr = proj ? *w_hr_ : Tensor();
  bool pending = false;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    if (proj) {
      at::parallel_for(0, B, grain(P), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          add_pending(b, pending);
          const int64_t r = t * B + b;
          M* o = dhtp + r * P;
          if (!active(lp, b, t)) {
            zero_row(o, P);
            continue;
          }
          T* dhr = dhp + b * P;
          const M* dy = doutp + r * P;
          const T* z = zhp + t * zh0 + b * zh1;
          IVDEP
          for (int64_t k = 0; k < P; ++k) {
            const T v = dhr[k] + static_cast<T>(dy[k]);
            o[k] = static_cast<M>((T(1) - z[k]) * v);
            dhr[k] = z[k] * v;
          }
        }
      });
      gemm(DHTt[t], w_hr, dhpre);
    }
    at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
      std::vector<T> dcn_tmp(H), dht_tmp(H), dcn_row(H);
      T* const ac = accp + at::get_thread_num() * W;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;
        if (!proj) add_pending(b, pending);
        if (!active(lp, b, t)) {
          zero_row(dXp + r * G, G);
          if (sep) zero_row(dAp + r * G, G);
          continue;
        }
        const T* g = gp + r * G;
        const T* ct = ctp + r * H;
        const T* cp = csp + r * H;
        T* dx = dXp + r * G;
        T* dcr = dcp + b * H;
        T* dcnr = lnc ? dcn_row.data() : dcn_tmp.data();
        const T* ch = lnc ? chp + r * H : ct;  // the normalised c~ (c~ itself without LN)
        const T* z = zhp + t * zh0 + b * zh1;
        T* dhr = dhp + b * P;
        const M* dy = doutp + r * P;
        const M* dpre = proj ? dhprep + b * H : nullptr;
        T* dhts = dht_tmp.data();  // grad of h~ before the projection
        if (proj) {
          IVDEP
          for (int64_t k = 0; k < H; ++k) dhts[k] = static_cast<T>(dpre[k]);
        } else {
          IVDEP
          for (int64_t k = 0; k < H; ++k) {
            const T v = dhr[k] + static_cast<T>(dy[k]);
            dhts[k] = (T(1) - z[k]) * v;
            dhr[k] = z[k] * v;
          }
        }
        IVDEP
        for (int64_t k = 0; k < H; ++k) {
          const T dht = dhts[k];
          const T og = g[3 * H + k];
          const T tc = tanh_(ch[k] * lgc[k] + lbc[k]);
          dx[3 * H + k] = dht * tc * og * (T(1) - og);
          dcnr[k] = dht * og * (T(1) - tc * tc);
        }
        T* dct = dcn_tmp.data();  // grad of c~ from the cell-state norm (in place when no LN)
        if (lnc) ln_back(dcnr, ch, lgc, rcp[r], dct, H);
        const T* zcr = zcp + t * zc0 + b * zc1;
        IVDEP
        for (int64_t k = 0; k < H; ++k) {
          const T dzo = dx[3 * H + k];
          const T dstate = (T(1) - zcr[k]) * dcr[k];
          const T dctil = dct[k] + dstate + dzo * wco[k];
          const T ig = g[k], fg = g[H + k], gg = g[2 * H + k], c = cp[k];
          const T dzi = dctil * gg * ig * (T(1) - ig);
          const T dzf = dctil * c * fg * (T(1) - fg);
          dx[k] = dzi;
          dx[H + k] = dzf;
          dx[2 * H + k] = dctil * ig * (T(1) - gg * gg);
          dcr[k] = zcr[k] * dcr[k] + dctil * fg + dzi * wci[k] + dzf * wcf[k];
        }
        M* da = dAp + r * G;
        if (ln) {
          ln_back(dx, ahp + r * G, lg, rhp[r], da, G);
        } else if (sep) {
          IVDEP
          for (int64_t k = 0; k < G; ++k) da[k] = static_cast<M>(dx[k]);
        }
        IVDEP
        for (int64_t k = 0; k < G; ++k) ac[k] += dx[k];
        if (ln) {
          const T* ah = ahp + r * G;
          IVDEP
          for (int64_t k = 0; k < G; ++k) ac[G + k] += dx[k] * ah[k];
        }
        if (pp) {
          T* ap = ac + 2 * G;
          IVDEP
          for (int64_t k = 0; k < H; ++k) {
            ap[k] += dx[k] * cp[k];
            ap[H + k] += dx[H + k] * cp[k];
            ap[2 * H + k] += dx[3 * H + k] * ct[k];
          }
        }
        if (lnc) {
          T* al = ac + 2 * G + 3 * H;
          IVDEP
          for (int64_t k = 0; k < H; ++k) {
            al[k] += dcnr[k] * ch[k];
            al[H + k] += dcnr[k];
          }
        }
      }
    });
    gemm(dAt[t], w_hh, dhd);
    pending = true;
  }
  for (int64_t b = 0; b < B; ++b) add_pending(b, pending && Tn > 0);

  const int64_t TB = Tn * B;
  Tensor dw_hh, dw_hr;
  if (need_w) {
    dw_hh = dense_mm(dAm.view({TB, G}).t(), HD.view({TB, P}));
    if (proj) dw_hr = dense_mm(DHT.view({TB, P}).t(), Hpre.view({TB, H}));
  }
  Tensor sums = acc.sum(0);
  Tensor db = sums.narrow(0, 0, G);
  Tensor dlnw = ln ? sums.narrow(0, G, G) : Tensor();
  Tensor dpeep = pp ? sums.narrow(0, 2 * G, 3 * H).view({3, H}) : Tensor();
  Tensor dlnwc = lnc ? sums.narrow(0, 2 * G + 3 * H, H) : Tensor();
  Tensor dlnbc = lnc ? sums.narrow(0, 2 * G + 4 * H, H) : Tensor();
  return {dX.to(sM), dh, dc, dw_hh, db, dw_hr, dpeep, dlnw, dlnwc, dlnbc};
}

// ----------------------------------------------------------------------------------- GRU
template <typename T, typename M>
std::vector<Tensor> gru_fwd(const Tensor& xw_in, const Tensor& h0_in, const Tensor& w_hh,
                            const OptT& b_hh_, const OptT& lnw_, const OptT& rd_, const OptT& zh_,
                            const OptT& len_, bool save) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const Dims d = dims(xw_in, h0_in, 3);
  const int64_t Tn = d.T, B = d.B, H = d.H, G = d.G;
  const bool ln = lnw_.has_value() && lnw_->defined();
  auto oT = xw_in.options().dtype(sT);
  auto oM = xw_in.options().dtype(sM);
  const Tensor xw = xw_in.contiguous();
  Tensor b_hh = b_hh_.has_value() && b_hh_->defined() ? as(b_hh_, sT) : at::zeros({G}, oT);
  Tensor lnw = as(lnw_, sT), rd = as(rd_, sT), zh = zone(zh_, sT, Tn, B, H);
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();
  Tensor w_hh_t = w_hh.t();

  // without save (inference) only one step's buffers (two alternating for state and input)
  const int64_t NS = save ? Tn + 1 : 2, NH = save ? Tn : 2, NG = save ? Tn : 1;
  Tensor out = at::empty({Tn, B, H}, oM);
  Tensor hs = work({NS, B, H}, oT);
  Tensor HD = work({NH, B, H}, oM);
  Tensor gates = work({NG, B, 4 * H}, oT);  // r, z, n, a_n
  Tensor Ahat = ln ? work({NG, B, G}, oT) : Tensor();
  Tensor rstd_h = ln ? at::empty({NG, B}, oT) : Tensor();
  Tensor A = at::empty({B, G}, oM);
  Tensor abuf = ln ? at::empty({B, G}, oT) : Tensor();
  hs[0].copy_(h0_in);
  if (rd.defined()) HD[0].copy_(hs[0] * rd);
  else HD[0].copy_(hs[0]);

  const M* xp = xw.data_ptr<M>();
  const T *bp = b_hh.data_ptr<T>(), *lg = ptr<T>(lnw), *rdp = ptr<T>(rd), *zhp = ptr<T>(zh);
  const int64_t zh0 = zh.stride(0), zh1 = zh.stride(1);
  const int64_t* lp = ptr<int64_t>(len);
  M *outp = out.data_ptr<M>(), *hdp = HD.data_ptr<M>(), *Ap = A.data_ptr<M>();
  T *hsp = hs.data_ptr<T>(), *gp = gates.data_ptr<T>(), *ahp = ptr<T>(Ahat), *rhp = ptr<T>(rstd_h);
  T* abp = ptr<T>(abuf);

  std::vector<Tensor> HDt = HD.unbind(0);
  for (int64_t t = 0; t < Tn; ++t) {
    gemm(HDt[t % NH], w_hh_t, A);
    at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;
        const int64_t q = (t % NG) * B + b;
        const T* hp = hsp + ((t % NS) * B + b) * H;
        T* hn = hsp + (((t + 1) % NS) * B + b) * H;
        if (!active(lp, b, t)) {
          std::copy(hp, hp + H, hn);
          zero_row(outp + r * H, H);
          zero_row(gp + q * 4 * H, 4 * H);
          zero_row(ahp ? ahp + q * G : nullptr, G);
        } else {
          const M* x = xp + r * G;
          const M* a = Ap + b * G;
          T* g = gp + q * 4 * H;
          if (ln) {
            T* ab = abp + b * G;
            IVDEP
            for (int64_t k = 0; k < G; ++k) ab[k] = static_cast<T>(a[k]);
            T* ah = ahp + q * G;
            rhp[q] = ln_stats(ab, ah, G);
            IVDEP
            for (int64_t k = 0; k < 2 * H; ++k) g[k] = static_cast<T>(x[k]) + ah[k] * lg[k] + bp[k];
            IVDEP
            for (int64_t k = 2 * H; k < G; ++k) g[H + k] = ah[k] * lg[k] + bp[k];
          } else {
            IVDEP
            for (int64_t k = 0; k < 2 * H; ++k)
              g[k] = static_cast<T>(x[k]) + static_cast<T>(a[k]) + bp[k];
            IVDEP
            for (int64_t k = 2 * H; k < G; ++k) g[H + k] = static_cast<T>(a[k]) + bp[k];
          }
          const T* z = zhp + t * zh0 + b * zh1;
          M* o = outp + r * H;
          IVDEP
          for (int64_t k = 0; k < H; ++k) {
            const T rg = sigm(g[k]), zg = sigm(g[H + k]);
            const T ng = tanh_(static_cast<T>(x[2 * H + k]) + rg * g[3 * H + k]);
            g[k] = rg;
            g[H + k] = zg;
            g[2 * H + k] = ng;
            T v = (T(1) - zg) * ng + zg * hp[k];
            v = z[k] * hp[k] + (T(1) - z[k]) * v;
            hn[k] = v;
            o[k] = static_cast<M>(v);
          }
        }
        if (t + 1 < Tn) {
          M* hd = hdp + (((t + 1) % NH) * B + b) * H;
          if (rdp) {
            IVDEP
            for (int64_t k = 0; k < H; ++k) hd[k] = static_cast<M>(hn[k] * rdp[b * H + k]);
          } else {
            IVDEP
            for (int64_t k = 0; k < H; ++k) hd[k] = static_cast<M>(hn[k]);
          }
        }
      }
    });
  }
  Tensor h_n = hs[Tn % NS].to(sM, false, true);
  if (!save) return {out, h_n};
  return {out, h_n, hs, HD, gates, Ahat, rstd_h};
}

template <typename T, typename M>
std::vector<Tensor> gru_bwd(const Tensor& dout_in, const Tensor& dhn,
                            const std::vector<Tensor>& saved, const Tensor& w_hh,
                            const OptT& lnw_, const OptT& rd_, const OptT& zh_, const OptT& len_,
                            bool need_w) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const Tensor hs = S(saved, 0), HD = S(saved, 1), gates = S(saved, 2), Ahat = S(saved, 3);
  const Tensor rstd_h = S(saved, 4);
  const int64_t Tn = gates.size(0), B = gates.size(1), H = gates.size(2) / 4, G = 3 * H;
  const bool ln = lnw_.has_value() && lnw_->defined();
  auto oT = gates.options().dtype(sT);
  auto oM = gates.options().dtype(sM);
  Tensor lnw = as(lnw_, sT), rd = as(rd_, sT), zh = zone(zh_, sT, Tn, B, H);
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();
  Tensor dout = dout_in.to(sM).contiguous();

  Tensor dX = at::empty({Tn, B, G}, oT);
  // grad of the recurrent product: written straight into dAm (products' input) when no
  // conversion or layer norm sits between them, else into a row buffer first
  const bool sep = ln || sM != sT;
  Tensor dAm = work({Tn, B, G}, oM);
  Tensor acc = at::zeros({at::get_num_threads(), 2 * G}, oT);  // per-thread db, d ln_weight
  Tensor dhd = at::empty({B, H}, oM);
  Tensor dh = dhn.to(sT).contiguous().clone();

  const T *lg = ptr<T>(lnw), *rdp = ptr<T>(rd), *zhp = ptr<T>(zh);
  const int64_t zh0 = zh.stride(0), zh1 = zh.stride(1);
  const int64_t* lp = ptr<int64_t>(len);
  const T *hsp = hs.data_ptr<T>(), *gp = gates.data_ptr<T>(), *ahp = ptr<T>(Ahat);
  const T* rhp = ptr<T>(rstd_h);
  const M* doutp = dout.data_ptr<M>();
  T *dXp = dX.data_ptr<T>(), *dhp = dh.data_ptr<T>(), *accp = acc.data_ptr<T>();
  M *dAp = dAm.data_ptr<M>(), *dhdp = dhd.data_ptr<M>();

  std::vector<Tensor> dAt = dAm.unbind(0);
  bool pending = false;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
      std::vector<T> dah_row(sep ? G : 0);
      T* const ac = accp + at::get_thread_num() * 2 * G;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;
        T* dhr = dhp + b * H;
        if (pending) {
          const M* q = dhdp + b * H;
          if (rdp) {
            IVDEP
            for (int64_t k = 0; k < H; ++k) dhr[k] += static_cast<T>(q[k]) * rdp[b * H + k];
          } else {
            IVDEP
            for (int64_t k = 0; k < H; ++k) dhr[k] += static_cast<T>(q[k]);
          }
        }
        if (!active(lp, b, t)) {
          zero_row(dXp + r * G, G);
          zero_row(dAp + r * G, G);
          continue;
        }
        const T* g = gp + r * 4 * H;
        const T* hp = hsp + r * H;
        const M* dy = doutp + r * H;
        const T* z = zhp + t * zh0 + b * zh1;
        T* dx = dXp + r * G;
        T* dah = sep ? dah_row.data() : reinterpret_cast<T*>(dAp + r * G);
        IVDEP
        for (int64_t k = 0; k < H; ++k) {
          const T v = dhr[k] + static_cast<T>(dy[k]);
          const T dht = (T(1) - z[k]) * v;
          const T rg = g[k], zg = g[H + k], ng = g[2 * H + k], an = g[3 * H + k];
          const T dnn = dht * (T(1) - zg) * (T(1) - ng * ng);
          const T dzr = dnn * an * rg * (T(1) - rg);
          const T dzz = dht * (hp[k] - ng) * zg * (T(1) - zg);
          dx[k] = dzr;
          dx[H + k] = dzz;
          dx[2 * H + k] = dnn;
          dah[k] = dzr;
          dah[H + k] = dzz;
          dah[2 * H + k] = dnn * rg;
          dhr[k] = z[k] * v + zg * dht;
        }
        M* da = dAp + r * G;
        if (ln) {
          ln_back(dah, ahp + r * G, lg, rhp[r], da, G);
        } else if (sep) {
          IVDEP
          for (int64_t k = 0; k < G; ++k) da[k] = static_cast<M>(dah[k]);
        }
        IVDEP
        for (int64_t k = 0; k < G; ++k) ac[k] += dah[k];
        if (ln) {
          const T* ah = ahp + r * G;
          IVDEP
          for (int64_t k = 0; k < G; ++k) ac[G + k] += dah[k] * ah[k];
        }
      }
    });
    gemm(dAt[t], w_hh, dhd);
    pending = true;
  }
  if (pending) dh.add_(rd.defined() ? dhd.to(sT) * rd : dhd.to(sT));

  const int64_t TB = Tn * B;
  Tensor dw_hh = need_w ? dense_mm(dAm.view({TB, G}).t(), HD.view({TB, H})) : Tensor();
  Tensor sums = acc.sum(0);
  Tensor db = sums.narrow(0, 0, G);
  Tensor dlnw = ln ? sums.narrow(0, G, G) : Tensor();
  return {dX.to(sM), dh, dw_hh, db, dlnw};
}

// ------------------------------------------------- layer norm of rows (the input projection)
// y = LN(a; g, b) over the last dimension of a (N, F); returns y (a's dtype), ahat, rstd.
// Without save (inference) y overwrites a (which must be contiguous and not needed
// elsewhere) and ahat, rstd are not kept: one pass over the rows, no (N, F) buffer.
template <typename T, typename M>
std::vector<Tensor> ln_rows_fwd(const Tensor& a_in, const Tensor& g_in, const OptT& b_, bool save) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const Tensor a = a_in.contiguous();
  const int64_t N = a.size(0), F = a.size(1);
  auto oT = a.options().dtype(sT);
  Tensor g = g_in.to(sT).contiguous();
  Tensor bias = b_.has_value() && b_->defined() ? as(b_, sT) : at::zeros({F}, oT);
  Tensor y = save ? work(a.sizes(), a.options()) : a;
  Tensor ahat = save ? work({N, F}, oT) : Tensor(), rstd = save ? work({N}, oT) : Tensor();
  const M* ap = a.data_ptr<M>();
  const T *gp = g.data_ptr<T>(), *bp = bias.data_ptr<T>();
  M* yp = y.data_ptr<M>();
  T *hp = ptr<T>(ahat), *rp = ptr<T>(rstd);
  at::parallel_for(0, N, grain(F), [&](int64_t r0, int64_t r1) {
    std::vector<T> row(std::is_same<M, T>::value ? 0 : F);
    for (int64_t r = r0; r < r1; ++r) {
      const T* v;  // row r in T (read in place when a is already in T)
      if constexpr (std::is_same<M, T>::value) {
        v = ap + r * F;
      } else {
        IVDEP
        for (int64_t k = 0; k < F; ++k) row[k] = static_cast<T>(ap[r * F + k]);
        v = row.data();
      }
      M* o = yp + r * F;  // o may be the row v itself (inference, in place)
      if (save) {
        T* h = hp + r * F;
        rp[r] = ln_stats(v, h, F);
        IVDEP
        for (int64_t k = 0; k < F; ++k) o[k] = static_cast<M>(h[k] * gp[k] + bp[k]);
      } else {
        T mean;
        const T rs = ln_moments(v, F, mean);
        IVDEP
        for (int64_t k = 0; k < F; ++k) o[k] = static_cast<M>((v[k] - mean) * rs * gp[k] + bp[k]);
      }
    }
  });
  if (!save) return {y};
  return {y, ahat, rstd};
}

// Backward of ln_rows_fwd: returns da (dy's dtype), dg, db.
template <typename T, typename M>
std::vector<Tensor> ln_rows_bwd(const Tensor& dy_in, const Tensor& ahat, const Tensor& rstd,
                                const Tensor& g_in) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const Tensor dy = dy_in.contiguous();
  const int64_t N = dy.size(0), F = dy.size(1);
  auto oT = dy.options().dtype(sT);
  Tensor g = g_in.to(sT).contiguous();
  Tensor da = at::empty_like(dy);
  Tensor acc = at::zeros({at::get_num_threads(), 2 * F}, oT);
  const M* dyp = dy.data_ptr<M>();
  const T *gp = g.data_ptr<T>(), *hp = ahat.data_ptr<T>(), *rp = rstd.data_ptr<T>();
  M* dap = da.data_ptr<M>();
  T* accp = acc.data_ptr<T>();
  at::parallel_for(0, N, grain(F), [&](int64_t r0, int64_t r1) {
    std::vector<T> row(F);
    T* const ac = accp + at::get_thread_num() * 2 * F;
    for (int64_t r = r0; r < r1; ++r) {
      const T* h = hp + r * F;
      IVDEP
      for (int64_t k = 0; k < F; ++k) {
        row[k] = static_cast<T>(dyp[r * F + k]);
        ac[k] += row[k] * h[k];
        ac[F + k] += row[k];
      }
      ln_back(row.data(), h, gp, rp[r], dap + r * F, F);
    }
  });
  Tensor sums = acc.sum(0);
  return {da, sums.narrow(0, 0, F), sums.narrow(0, F, F)};
}

// ------------------------------------------------------------------------ dtype dispatch
#define LSTMKIT_DISPATCH(dtype, FN, ...)                                                     \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      case at::kFloat: return FN<float, float>(__VA_ARGS__);                               \
      case at::kDouble: return FN<double, double>(__VA_ARGS__);                            \
      case at::kBFloat16: return FN<float, c10::BFloat16>(__VA_ARGS__);                    \
      default: TORCH_CHECK(false, "fused kernel: expected float32, float64 or bfloat16 xw"); \
    }                                                                                      \
  }()

std::vector<Tensor> lstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const OptT& b_hh, const OptT& w_hr,
                                 const OptT& peep, const OptT& lnw, const OptT& lnwc,
                                 const OptT& lnbc, const OptT& rd, const OptT& zh, const OptT& zc,
                                 const OptT& len, bool save) {
  return LSTMKIT_DISPATCH(xw.scalar_type(), lstm_fwd, xw, h0, c0, w_hh, b_hh, w_hr, peep, lnw,
                          lnwc, lnbc, rd, zh, zc, len, save);
}

std::vector<Tensor> lstm_backward(const Tensor& dout, const Tensor& dhn, const Tensor& dcn,
                                  const std::vector<Tensor>& saved, const Tensor& w_hh,
                                  const OptT& w_hr, const OptT& peep, const OptT& lnw,
                                  const OptT& lnwc, const OptT& lnbc, const OptT& rd,
                                  const OptT& zh, const OptT& zc, const OptT& len, bool need_w) {
  return LSTMKIT_DISPATCH(w_hh.scalar_type(), lstm_bwd, dout, dhn, dcn, saved, w_hh, w_hr, peep,
                          lnw, lnwc, lnbc, rd, zh, zc, len, need_w);
}

std::vector<Tensor> gru_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh,
                                const OptT& b_hh, const OptT& lnw, const OptT& rd, const OptT& zh,
                                const OptT& len, bool save) {
  return LSTMKIT_DISPATCH(xw.scalar_type(), gru_fwd, xw, h0, w_hh, b_hh, lnw, rd, zh, len, save);
}

std::vector<Tensor> gru_backward(const Tensor& dout, const Tensor& dhn,
                                 const std::vector<Tensor>& saved, const Tensor& w_hh,
                                 const OptT& lnw, const OptT& rd, const OptT& zh, const OptT& len,
                                 bool need_w) {
  return LSTMKIT_DISPATCH(w_hh.scalar_type(), gru_bwd, dout, dhn, saved, w_hh, lnw, rd, zh, len,
                          need_w);
}

std::vector<Tensor> layer_norm_forward(const Tensor& a, const Tensor& g, const OptT& b,
                                       bool save) {
  return LSTMKIT_DISPATCH(a.scalar_type(), ln_rows_fwd, a, g, b, save);
}

std::vector<Tensor> layer_norm_backward(const Tensor& dy, const Tensor& ahat, const Tensor& rstd,
                                        const Tensor& g) {
  return LSTMKIT_DISPATCH(dy.scalar_type(), ln_rows_bwd, dy, ahat, rstd, g);
}

// The sLSTM's forward and backward (xLSTM), on the products and helpers above.
#include "slstm.h"

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_products", &set_products);
  m.def("empty_cache", &empty_cache);
  m.def("layer_norm_forward", &layer_norm_forward);
  m.def("layer_norm_backward", &layer_norm_backward);
  m.def("mm", &dense_mm);
  m.def("mm_bias", &mm_bias);
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("slstm_forward", &slstm_forward);
  m.def("slstm_backward", &slstm_backward);
}
