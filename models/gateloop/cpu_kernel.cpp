// GateLoop's recurrence as a sequential CPU loop, forward and backward.
//
//   h_t = a_t ⊙ h_{t-1} + k_tᵀ v_t,   y_t = Re(q_t h_t)      (h: H × dk × dv complex per sequence)
//
// Layouts (contiguous): q, k (B, L, H, dk); v (B, L, H, dv); a (B, L, H, dk, 2) = view_as_real, or
// (B, L, H, 1, 2) for one transition per head (read for every row; its gradient sums the rows);
// h0 (B, H, dk, dv, 2). Time is the outer loop and channels the inner one, so every step reads and
// writes contiguous memory. Forward keeps the state every `chunk` steps; backward recomputes one
// chunk of states at a time from those checkpoints, so memory stays O(L / chunk · state).
// Complex gradients follow PyTorch's convention: for z = a·w, grad_a = grad_z · conj(w).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace {

// Matrix states (dk, dv > 1) have two row loops: a portable one the compiler vectorises, and on AVX-512
// builds one written with intrinsics (masked tails, so any dv). Why: the backward's four per-row sums,
// as `omp simd` reductions, make GCC spill each vector and add its lanes one by one (half the
// backward's time at head_dim 32), and y and grad v summed row after row through memory wait on
// store-to-load forwarding; here both are register sums over a head's rows (the speed gained is
// measured by benchmarks/test_training_speed.py). Both stay callable (`vectorised`), so the tests compare each with the float64 reference.
#if defined(__AVX512F__)
constexpr bool kHaveAvx512 = true;

template <typename T>
struct Avx512;

template <>
struct Avx512<float> {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int64_t lanes = 16;
  static Mask first(int64_t n) { return n >= lanes ? Mask(0xFFFF) : Mask((1u << n) - 1); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V x, Mask m) { _mm512_mask_storeu_ps(p, m, x); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V zero() { return _mm512_setzero_ps(); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }     // a·b + c
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }   // c − a·b
  static V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }     // a·b − c
  static float sum(V x) { return _mm512_reduce_add_ps(x); }
};

template <>
struct Avx512<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int64_t lanes = 8;
  static Mask first(int64_t n) { return n >= lanes ? Mask(0xFF) : Mask((1u << n) - 1); }
  static V load(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(double* p, V x, Mask m) { _mm512_mask_storeu_pd(p, m, x); }
  static V broadcast(double x) { return _mm512_set1_pd(x); }
  static V zero() { return _mm512_setzero_pd(); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static V fmsub(V a, V b, V c) { return _mm512_fmsub_pd(a, b, c); }
  static double sum(V x) { return _mm512_reduce_add_pd(x); }
};

// One state row forward: to = a·from + k·v (from may be to).
template <typename T>
void forward_row_avx512(int64_t dv, T ar, T ai, T kk, const T* v, const T* from_re, const T* from_im, T* to_re,
                        T* to_im) {
  using S = Avx512<T>;
  const auto var = S::broadcast(ar), vai = S::broadcast(ai), vk = S::broadcast(kk);
  for (int64_t j = 0; j < dv; j += S::lanes) {
    const auto m = S::first(dv - j);
    const auto sr = S::load(from_re + j, m), si = S::load(from_im + j, m);
    S::store(to_re + j, S::fmadd(vk, S::load(v + j, m), S::fnmadd(vai, si, S::mul(var, sr))), m);
    S::store(to_im + j, S::fmadd(var, si, S::mul(vai, sr)), m);
  }
}

// out = Σ_i w_i rows_i (+ scale·extra): y = q·Re(h) and grad v = kᵀ Re(G) + (q·k) grad y, one head's
// rows at a time, accumulated in registers (two chains) rather than through memory row after row.
template <typename T>
void weighted_row_sum_avx512(int64_t dk, int64_t dv, const T* w, const T* rows, T scale, const T* extra, T* out) {
  using S = Avx512<T>;
  for (int64_t j = 0; j < dv; j += S::lanes) {
    const auto m = S::first(dv - j);
    auto even = extra ? S::mul(S::broadcast(scale), S::load(extra + j, m)) : S::zero(), odd = S::zero();
    int64_t i = 0;
    for (; i + 1 < dk; i += 2) {
      even = S::fmadd(S::broadcast(w[i]), S::load(rows + i * dv + j, m), even);
      odd = S::fmadd(S::broadcast(w[i + 1]), S::load(rows + (i + 1) * dv + j, m), odd);
    }
    if (i < dk) even = S::fmadd(S::broadcast(w[i]), S::load(rows + i * dv + j, m), even);
    S::store(out + j, S::add(even, odd), m);
  }
}

// One state row backward (grad v aside: weighted_row_sum_avx512); sums = (grad q, grad k, grad Re a,
// grad Im a) of this row.
template <typename T>
void backward_row_avx512(int64_t dv, T ar, T ai, T qq, const T* gy, const T* v, const T* after_re,
                         const T* before_re, const T* before_im, T* g_re, T* g_im, T* sums) {
  using S = Avx512<T>;
  const auto var = S::broadcast(ar), vai = S::broadcast(ai), vq = S::broadcast(qq);
  auto gq = S::zero(), gk = S::zero(), ga_re = S::zero(), ga_im = S::zero();
  for (int64_t j = 0; j < dv; j += S::lanes) {
    const auto m = S::first(dv - j);
    const auto gyj = S::load(gy + j, m);
    const auto gr = S::fmadd(vq, gyj, S::load(g_re + j, m)), gi = S::load(g_im + j, m);
    const auto br = S::load(before_re + j, m), bi = S::load(before_im + j, m);
    gq = S::fmadd(S::load(after_re + j, m), gyj, gq);
    gk = S::fmadd(gr, S::load(v + j, m), gk);
    ga_re = S::fmadd(gr, br, S::fmadd(gi, bi, ga_re));
    ga_im = S::fmadd(gi, br, S::fnmadd(gr, bi, ga_im));
    S::store(g_re + j, S::fmadd(var, gr, S::mul(vai, gi)), m);
    S::store(g_im + j, S::fmsub(var, gi, S::mul(vai, gr)), m);
  }
  sums[0] = S::sum(gq), sums[1] = S::sum(gk), sums[2] = S::sum(ga_re), sums[3] = S::sum(ga_im);
}
#else
constexpr bool kHaveAvx512 = false;
#endif

struct Shape {
  int64_t B, L, H, dk, dv, a_dk, chunk, chunks;
  // a's element for row i of head h at (b, t): its own, or the head's
  int64_t a_index(int64_t b, int64_t t, int64_t h, int64_t i) const { return ((b * L + t) * H + h) * a_dk + (a_dk == 1 ? 0 : i); }
};

// Work items: (batch, block of heads). Max heads: enough blocks to keep every thread busy, each as wide
// as possible (its loop runs across heads). Matrix states: one head per item, so the backward's chunk of
// recomputed states (chunk + 1 states of one head) stays in L2.
int64_t head_blocks(const Shape& s) {

  const int64_t wanted = std::max<int64_t>(1, (2 * at::get_num_threads() + s.B - 1) / s.B);
  return std::min<int64_t>(s.H, wanted);
}

// Max heads (dk = dv = 1): one complex multiply-add per channel, a flat loop the compiler vectorises.
template <typename T>
void step_forward_scalar_state(const Shape& s, int64_t b, int64_t t, int64_t h_begin, int64_t h_end,
                               const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                               const T* __restrict__ a, T* __restrict__ state_re, T* __restrict__ state_im,
                               T* __restrict__ y) {
  const int64_t base = (b * s.L + t) * s.H;
  const T *qt = q + base, *kt = k + base, *vt = v + base, *at = a + 2 * base;
  const int64_t n = h_end - h_begin;
  qt += h_begin, kt += h_begin, vt += h_begin, at += 2 * h_begin;
  if (y) {
    T* yt = y + base + h_begin;
    for (int64_t h = 0; h < n; ++h) {
      const T ar = at[2 * h], ai = at[2 * h + 1], sr = state_re[h], si = state_im[h];
      const T nr = ar * sr - ai * si + kt[h] * vt[h];
      state_im[h] = ar * si + ai * sr;
      state_re[h] = nr;
      yt[h] = qt[h] * nr;
    }
  } else {
    for (int64_t h = 0; h < n; ++h) {
      const T ar = at[2 * h], ai = at[2 * h + 1], sr = state_re[h], si = state_im[h];
      state_re[h] = ar * sr - ai * si + kt[h] * vt[h];
      state_im[h] = ar * si + ai * sr;
    }
  }
}

// One step for heads [h_begin, h_end): state `to` = a_t ⊙ `from` + k_tᵀ v_t (`from` may be `to`), and
// y_t when y is given.
template <typename T>
void step_forward(const Shape& s, int64_t b, int64_t t, int64_t h_begin, int64_t h_end, const T* q, const T* k,
                  const T* v, const T* a, const T* from_re, const T* from_im, T* to_re, T* to_im, T* y,
                  bool vectorised) {
  if (s.dk == 1 && s.dv == 1) {
    const int64_t n = h_end - h_begin;
    if (from_re != to_re) std::copy_n(from_re, n, to_re), std::copy_n(from_im, n, to_im);
    return step_forward_scalar_state(s, b, t, h_begin, h_end, q, k, v, a, to_re, to_im, y);
  }
  const int64_t qk_base = (b * s.L + t) * s.H * s.dk;
  const int64_t v_base = (b * s.L + t) * s.H * s.dv;
  for (int64_t h = h_begin; h < h_end; ++h) {
    T* y_h = y ? y + v_base + h * s.dv : nullptr;
    const T* v_h = v + v_base + h * s.dv;
#if defined(__AVX512F__)
    if (vectorised) {
      const int64_t head = (h - h_begin) * s.dk * s.dv;
      for (int64_t i = 0; i < s.dk; ++i) {
        const int64_t qi = qk_base + h * s.dk + i, row = head + i * s.dv, ax = s.a_index(b, t, h, i);
        forward_row_avx512(s.dv, a[2 * ax], a[2 * ax + 1], k[qi], v_h, from_re + row, from_im + row, to_re + row,
                           to_im + row);
      }
      if (y_h) weighted_row_sum_avx512<T>(s.dk, s.dv, q + qk_base + h * s.dk, to_re + head, T(0), nullptr, y_h);
      continue;
    }
#endif
    if (y_h) std::fill_n(y_h, s.dv, T(0));
    for (int64_t i = 0; i < s.dk; ++i) {
      const int64_t qi = qk_base + h * s.dk + i, row = ((h - h_begin) * s.dk + i) * s.dv, ax = s.a_index(b, t, h, i);
      const T ar = a[2 * ax], ai = a[2 * ax + 1], kk = k[qi], qq = q[qi];
      const T *fr = from_re + row, *fi = from_im + row;
      T *tr = to_re + row, *ti = to_im + row;
      for (int64_t j = 0; j < s.dv; ++j) {
        const T sr = fr[j], si = fi[j];
        const T nr = ar * sr - ai * si + kk * v_h[j];
        ti[j] = ar * si + ai * sr;
        tr[j] = nr;
        if (y_h) y_h[j] += qq * nr;
      }
    }
  }
}

template <typename T>
void load_state(const Shape& s, const T* source, int64_t h_begin, int64_t h_end, T* re, T* im) {
  // source: (H, dk, dv, 2) of one sequence
  const int64_t n = (h_end - h_begin) * s.dk * s.dv;
  const T* from = source + h_begin * s.dk * s.dv * 2;
  for (int64_t e = 0; e < n; ++e) {
    re[e] = from[2 * e];
    im[e] = from[2 * e + 1];
  }
}

template <typename T>
void store_state(const Shape& s, T* target, int64_t h_begin, int64_t h_end, const T* re, const T* im) {
  const int64_t n = (h_end - h_begin) * s.dk * s.dv;
  T* to = target + h_begin * s.dk * s.dv * 2;
  for (int64_t e = 0; e < n; ++e) {
    to[2 * e] = re[e];
    to[2 * e + 1] = im[e];
  }
}

// One reverse step for max heads: every array is indexed by channel at offset `base`.
template <typename T>
void backward_step_scalar_state(int64_t base, int64_t n, const T* __restrict__ q, const T* __restrict__ k,
                                const T* __restrict__ v, const T* __restrict__ a, const T* __restrict__ grad_y,
                                const T* __restrict__ after_re, const T* __restrict__ before_re,
                                const T* __restrict__ before_im, T* __restrict__ g_re, T* __restrict__ g_im,
                                T* __restrict__ grad_q, T* __restrict__ grad_k, T* __restrict__ grad_v,
                                T* __restrict__ grad_a) {
  q += base, k += base, v += base, a += 2 * base, grad_y += base;
  grad_q += base, grad_k += base, grad_v += base, grad_a += 2 * base;
  for (int64_t h = 0; h < n; ++h) {
    const T gr = g_re[h] + q[h] * grad_y[h], gi = g_im[h], ar = a[2 * h], ai = a[2 * h + 1];
    const T br = before_re[h], bi = before_im[h];
    grad_q[h] = after_re[h] * grad_y[h];
    grad_k[h] = gr * v[h];
    grad_v[h] = gr * k[h];
    grad_a[2 * h] = gr * br + gi * bi;
    grad_a[2 * h + 1] = gi * br - gr * bi;
    g_re[h] = ar * gr + ai * gi;
    g_im[h] = ar * gi - ai * gr;
  }
}

template <typename T>
void store_transition_gradient(bool shared, T* target, T re, T im) {
  if (shared) {
    target[0] += re, target[1] += im;
  } else {
    target[0] = re, target[1] = im;
  }
}

void check_transition(const torch::Tensor& q, const torch::Tensor& a) {
  TORCH_CHECK(a.dim() == 5 && a.size(4) == 2 && (a.size(3) == q.size(3) || a.size(3) == 1),
              "gateloop kernel: a must be (B, L, H, dk, 2) or (B, L, H, 1, 2), got ", a.sizes());
}

}  // namespace

std::vector<torch::Tensor> gateloop_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor a,
                                            torch::Tensor h0, int64_t chunk, bool vectorised) {
  check_transition(q, a);
  const Shape s{q.size(0), q.size(1), q.size(2), q.size(3), v.size(3), a.size(3), chunk, (q.size(1) + chunk - 1) / chunk};
  auto y = torch::empty_like(v);
  auto final_state = torch::empty_like(h0);
  auto checkpoints = torch::empty({s.B, s.chunks, s.H, s.dk, s.dv, 2}, h0.options());
  const int64_t blocks = head_blocks(s);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "gateloop_forward", [&] {
    const auto *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(),
               *ap = a.data_ptr<scalar_t>(), *h0p = h0.data_ptr<scalar_t>();
    auto *yp = y.data_ptr<scalar_t>(), *fp = final_state.data_ptr<scalar_t>(), *cp = checkpoints.data_ptr<scalar_t>();
    const int64_t state_numel = s.H * s.dk * s.dv * 2;
    at::parallel_for(0, s.B * blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / blocks, block = item % blocks;
        const int64_t h_begin = s.H * block / blocks, h_end = s.H * (block + 1) / blocks;
        std::vector<scalar_t> re((h_end - h_begin) * s.dk * s.dv), im(re.size());
        load_state(s, h0p + b * state_numel, h_begin, h_end, re.data(), im.data());
        for (int64_t t = 0; t < s.L; ++t) {
          if (t % s.chunk == 0)
            store_state(s, cp + (b * s.chunks + t / s.chunk) * state_numel, h_begin, h_end, re.data(), im.data());
          step_forward(s, b, t, h_begin, h_end, qp, kp, vp, ap, re.data(), im.data(), re.data(), im.data(), yp,
                       vectorised);
        }
        store_state(s, fp + b * state_numel, h_begin, h_end, re.data(), im.data());
      }
    });
  });
  return {y, final_state, checkpoints};
}

std::vector<torch::Tensor> gateloop_backward(torch::Tensor grad_y, torch::Tensor grad_final, torch::Tensor q,
                                             torch::Tensor k, torch::Tensor v, torch::Tensor a,
                                             torch::Tensor checkpoints, int64_t chunk, bool vectorised) {
  check_transition(q, a);
  const Shape s{q.size(0), q.size(1), q.size(2), q.size(3), v.size(3), a.size(3), chunk, checkpoints.size(1)};
  auto grad_q = torch::empty_like(q), grad_k = torch::empty_like(k), grad_v = torch::empty_like(v);
  const bool shared_a = a.size(3) != q.size(3);  // one transition per head: its gradient is a sum over rows
  auto grad_a = shared_a ? torch::zeros_like(a) : torch::empty_like(a), grad_h0 = torch::empty_like(grad_final);
  const int64_t blocks = head_blocks(s);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "gateloop_backward", [&] {
    const auto *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(),
               *ap = a.data_ptr<scalar_t>(), *cp = checkpoints.data_ptr<scalar_t>(),
               *gyp = grad_y.data_ptr<scalar_t>(), *gfp = grad_final.data_ptr<scalar_t>();
    auto *gqp = grad_q.data_ptr<scalar_t>(), *gkp = grad_k.data_ptr<scalar_t>(), *gvp = grad_v.data_ptr<scalar_t>(),
         *gap = grad_a.data_ptr<scalar_t>(), *gh0p = grad_h0.data_ptr<scalar_t>();
    const int64_t state_numel = s.H * s.dk * s.dv * 2;
    at::parallel_for(0, s.B * blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / blocks, block = item % blocks;
        const int64_t h_begin = s.H * block / blocks, h_end = s.H * (block + 1) / blocks;
        const int64_t n = (h_end - h_begin) * s.dk * s.dv;
        std::vector<scalar_t> g_re(n), g_im(n);  // gradient w.r.t. the state, carried backwards
        load_state(s, gfp + b * state_numel, h_begin, h_end, g_re.data(), g_im.data());
        std::vector<scalar_t> states_re((s.chunk + 1) * n), states_im((s.chunk + 1) * n);
        for (int64_t c = s.chunks - 1; c >= 0; --c) {
          const int64_t t0 = c * s.chunk, t1 = std::min(s.L, t0 + s.chunk);
          load_state(s, cp + (b * s.chunks + c) * state_numel, h_begin, h_end, states_re.data(), states_im.data());
          for (int64_t t = t0; t < t1; ++t) {  // states after each step of this chunk
            const int64_t slot = (t - t0 + 1) * n;
            step_forward<scalar_t>(s, b, t, h_begin, h_end, qp, kp, vp, ap, states_re.data() + slot - n,
                                   states_im.data() + slot - n, states_re.data() + slot, states_im.data() + slot,
                                   nullptr, vectorised);
          }
          for (int64_t t = t1 - 1; t >= t0; --t) {
            const scalar_t *after_re = states_re.data() + (t - t0 + 1) * n, *before_re = after_re - n;
            const scalar_t *before_im = states_im.data() + (t - t0) * n;
            const int64_t qk_base = (b * s.L + t) * s.H * s.dk, v_base = (b * s.L + t) * s.H * s.dv;
            if (s.dk == 1 && s.dv == 1) {
              backward_step_scalar_state(qk_base + h_begin, n, qp, kp, vp, ap, gyp, after_re, before_re, before_im,
                                         g_re.data(), g_im.data(), gqp, gkp, gvp, gap);
              continue;
            }
            for (int64_t h = h_begin; h < h_end; ++h) {
              const scalar_t* gy = gyp + v_base + h * s.dv;
              const scalar_t* vv = vp + v_base + h * s.dv;
              scalar_t* gv = gvp + v_base + h * s.dv;
#if defined(__AVX512F__)
              if (vectorised) {
                const int64_t head = (h - h_begin) * s.dk * s.dv;
                const scalar_t *q_h = qp + qk_base + h * s.dk, *k_h = kp + qk_base + h * s.dk;
                const scalar_t qk = std::inner_product(q_h, q_h + s.dk, k_h, scalar_t(0));
                weighted_row_sum_avx512(s.dk, s.dv, k_h, g_re.data() + head, qk, gy, gv);  // before G moves on
                for (int64_t i = 0; i < s.dk; ++i) {
                  const int64_t qi = qk_base + h * s.dk + i, e0 = head + i * s.dv, ax = s.a_index(b, t, h, i);
                  scalar_t sums[4];
                  backward_row_avx512(s.dv, ap[2 * ax], ap[2 * ax + 1], qp[qi], gy, vv, after_re + e0, before_re + e0,
                                      before_im + e0, g_re.data() + e0, g_im.data() + e0, sums);
                  gqp[qi] = sums[0], gkp[qi] = sums[1];
                  store_transition_gradient(shared_a, gap + 2 * ax, sums[2], sums[3]);
                }
                continue;
              }
#endif
              std::fill_n(gv, s.dv, scalar_t(0));
              for (int64_t i = 0; i < s.dk; ++i) {
                const int64_t qi = qk_base + h * s.dk + i, e0 = ((h - h_begin) * s.dk + i) * s.dv;
                const int64_t ax = s.a_index(b, t, h, i);
                const scalar_t ar = ap[2 * ax], ai = ap[2 * ax + 1], kk = kp[qi], qq = qp[qi];
                scalar_t gq = 0, gk = 0, ga_re = 0, ga_im = 0;
                // the four sums would keep this loop scalar (no reassociation without the pragma;
                // _Pragma because this code is a macro argument of AT_DISPATCH)
                _Pragma("omp simd reduction(+ : gq, gk, ga_re, ga_im)")
                for (int64_t j = 0; j < s.dv; ++j) {
                  const int64_t e = e0 + j;
                  const scalar_t gr = g_re[e] + qq * gy[j], gi = g_im[e];  // add y_t's read-out of h_t
                  gq += after_re[e] * gy[j];
                  gk += gr * vv[j];
                  gv[j] += gr * kk;
                  ga_re += gr * before_re[e] + gi * before_im[e];  // G · conj(h_{t-1})
                  ga_im += gi * before_re[e] - gr * before_im[e];
                  g_re[e] = ar * gr + ai * gi;  // conj(a_t) · G
                  g_im[e] = ar * gi - ai * gr;
                }
                gqp[qi] = gq;
                gkp[qi] = gk;
                store_transition_gradient(shared_a, gap + 2 * ax, ga_re, ga_im);
              }
            }
          }
        }
        store_state(s, gh0p + b * state_numel, h_begin, h_end, g_re.data(), g_im.data());
      }
    });
  });
  return {grad_q, grad_k, grad_v, grad_a, grad_h0};
}

// The data-controlled transition a = σ(|z|)·z/|z| for z = x + iy, as (…, 2) pairs, in one pass (as
// separate PyTorch ops it was ten passes forward and more backward over an activation-sized tensor,
// a quarter of a max-heads layer's time at L = 16384). At z = 0, a = ½ and its gradient is taken as 0.
std::vector<torch::Tensor> transition_forward(torch::Tensor x, torch::Tensor y) {
  x = x.contiguous(), y = y.contiguous();
  auto sizes = x.sizes().vec();
  sizes.push_back(2);
  auto a = torch::empty(sizes, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transition_forward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *yp = y.data_ptr<scalar_t>();
    scalar_t* ap = a.data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        const scalar_t modulus = std::sqrt(xp[e] * xp[e] + yp[e] * yp[e]);
        const bool zero = modulus == scalar_t(0);
        const scalar_t scale = (scalar_t(1) / (scalar_t(1) + std::exp(-modulus))) / (zero ? scalar_t(1) : modulus);
        ap[2 * e] = zero ? scalar_t(0.5) : xp[e] * scale;
        ap[2 * e + 1] = zero ? scalar_t(0) : yp[e] * scale;
      }
    });
  });
  return {a};
}

std::vector<torch::Tensor> transition_backward(torch::Tensor grad_a, torch::Tensor x, torch::Tensor y) {
  grad_a = grad_a.contiguous(), x = x.contiguous(), y = y.contiguous();
  auto grad_x = torch::empty_like(x), grad_y = torch::empty_like(y);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transition_backward", [&] {
    const scalar_t *gp = grad_a.data_ptr<scalar_t>(), *xp = x.data_ptr<scalar_t>(), *yp = y.data_ptr<scalar_t>();
    scalar_t *gxp = grad_x.data_ptr<scalar_t>(), *gyp = grad_y.data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        const scalar_t modulus = std::sqrt(xp[e] * xp[e] + yp[e] * yp[e]);
        const bool zero = modulus == scalar_t(0);
        const scalar_t m = zero ? scalar_t(1) : modulus;
        const scalar_t sig = scalar_t(1) / (scalar_t(1) + std::exp(-m));
        const scalar_t scale = sig / m;  // a = scale · z
        const scalar_t along = (sig * (scalar_t(1) - sig) - scale) / (m * m);  // d scale / d|z|, over |z|
        const scalar_t gr = gp[2 * e], gi = gp[2 * e + 1], dot = (gr * xp[e] + gi * yp[e]) * along;
        gxp[e] = zero ? scalar_t(0) : gr * scale + dot * xp[e];
        gyp[e] = zero ? scalar_t(0) : gi * scale + dot * yp[e];
      }
    });
  });
  return {grad_x, grad_y};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("has_avx512") = kHaveAvx512;
  m.def("transition_forward", &transition_forward, "a = sigmoid(|z|) z / |z| as real pairs (CPU)");
  m.def("transition_backward", &transition_backward, "its backward (CPU)");
  m.def("forward", &gateloop_forward, "GateLoop recurrence, forward (CPU)");
  m.def("backward", &gateloop_backward, "GateLoop recurrence, backward with chunked recomputation (CPU)");
}
