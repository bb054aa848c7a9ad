// sLSTM (xLSTM's scalar-memory LSTM, lstmkit.nn.xlstm_cells): one direction of one layer,
// forward and a hand-written backward through time. Included from fused_rnn.cpp inside its
// anonymous namespace, so the extension stays one module: it uses that file's products
// (gemm, StepProduct and our own register-tiled product, all chosen by the CPU's
// capabilities), its buffer cache and its fast exp.
//
// Per step t, with xw_t the input projection (bias included; gates i, f, z, o of unit
// u = k*d + j of head k) and R_k head k's (4d x d) recurrent block:
//   a_k = h_{t-1,k} R_k^T (one product per head);  ĩ, f̃, z̃, õ = xw_t + a
//   lf = log σ(f̃) (sigmoid forget gate) or f̃ (exponential)
//   m_t = ĩ where n_{t-1} = 0, else max(lf + m_{t-1}, ĩ)
//   i' = exp(ĩ - m_t);  f' = exp(min(lf + m_{t-1} - m_t, 0))
//   c_t = f' c_{t-1} + i' tanh(z̃);  n_t = f' n_{t-1} + i';  h_t = σ(õ) c_t / n_t
// Padded steps (t >= lengths[b]) keep the state and output 0.
//
// xw is read as a (T, B, 4, heads, d) view with any strides (d's being 1): the layer's
// gate-major (T, B, 4H) projection and the head-wise one's (heads, T, B, 4, d) both come
// without a copy; its gradient is written in the same layout.
//
// float32 (M = float): each thread runs every step on its own batch rows (per-head products
// with our own tiled product, then the gate pass), with no barrier between steps, as the
// LSTM does. Otherwise per step: one product per head (StepProduct), then a multithreaded
// gate pass over the rows. Saved for backward: the states c, n, m of every step, h_{t-1}
// per head (the products' input, also the weight gradient's), and ĩ, f̃, tanh z̃, σ(õ);
// backward recomputes lf, i' and f' (cheaper than keeping them), one product per head and
// step, and the weight gradient as one product per head over all steps at the end.

// log1p(u) for u in [0, 1] without library calls (so the loops vectorise): 2 atanh(s) with
// s = u / (2 + u) <= 1/3, its odd series to s^13 (error below 1e-8).
inline float flog1p01(float u) {
  const float s = u / (2.0f + u), s2 = s * s;
  float p = 2.0f / 13.0f;
  p = std::fma(p, s2, 2.0f / 11.0f);
  p = std::fma(p, s2, 2.0f / 9.0f);
  p = std::fma(p, s2, 2.0f / 7.0f);
  p = std::fma(p, s2, 2.0f / 5.0f);
  p = std::fma(p, s2, 2.0f / 3.0f);
  p = std::fma(p, s2, 2.0f);
  return s * p;
}
// log σ(x) = min(x, 0) - log1p(exp(-|x|))
inline float logsig(float x) { return (x < 0.0f ? x : 0.0f) - flog1p01(fexp(-std::fabs(x))); }
inline double logsig(double x) {
  return (x < 0.0 ? x : 0.0) - std::log1p(std::exp(-std::fabs(x)));
}
inline float exp_(float x) { return fexp(x); }
inline double exp_(double x) { return std::exp(x); }
// log f from f̃: the forget gate's kind is a template argument, so that the gate loops have
// no branch (a run-time choice between f̃ and log σ(f̃) stops the vectoriser)
template <bool EXPF, typename T>
inline T log_forget(T fr) {
  if constexpr (EXPF) {
    return fr;
  } else {
    return logsig(fr);
  }
}

struct SDims {
  int64_t T, B, H, NH, D;
  int64_t sT, sB, sG, sK;  // xw's strides: step, row, gate, head
};

inline SDims sdims(const Tensor& xw, const Tensor& w_hh) {
  TORCH_CHECK(xw.dim() == 5 && xw.size(2) == 4 && xw.stride(4) == 1,
              "sLSTM: xw must be a (T, B, 4, heads, d) view with unit stride in d, got ",
              xw.sizes(), " strides ", xw.strides());
  TORCH_CHECK(w_hh.dim() == 3 && w_hh.size(0) == xw.size(3) && w_hh.size(2) == xw.size(4) &&
                  w_hh.size(1) == 4 * w_hh.size(2),
              "sLSTM: w_hh must be (heads, 4*d, d), got ", w_hh.sizes());
  return SDims{xw.size(0),   xw.size(1),   xw.size(3) * xw.size(4), xw.size(3), xw.size(4),
               xw.stride(0), xw.stride(1), xw.stride(2),            xw.stride(3)};
}

template <typename T, typename M, bool EXPF>
std::vector<Tensor> slstm_fwd_(const Tensor& xw_in, const Tensor& h0, const Tensor& c0,
                               const Tensor& n0, const Tensor& m0, const Tensor& w_hh,
                               const OptT& len_, bool save) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const SDims d = sdims(xw_in, w_hh);
  const int64_t Tn = d.T, B = d.B, H = d.H, NH = d.NH, D = d.D, G = 4 * H, G4 = 4 * D;
  const int64_t xT = d.sT, xB = d.sB, xG = d.sG, xK = d.sK;
  auto oT = xw_in.options().dtype(sT);
  auto oM = xw_in.options().dtype(sM);
  const Tensor& xw = xw_in;
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();

  // Without save (inference) the per-step buffers hold one step (two for the states and
  // the products' input, which alternate), so nothing of size T*B*H is allocated.
  const int64_t NS = save ? Tn + 1 : 2, NI = save ? Tn : 2, NG = save ? Tn : 1;
  Tensor out = at::empty({Tn, B, H}, oM);
  Tensor cs = work({NS, B, H}, oT), ns = work({NS, B, H}, oT), ms = work({NS, B, H}, oT);
  Tensor hs = at::empty({2, B, H}, oT);   // h_{t-1}, h_t (alternating)
  Tensor HD = work({NH, NI, B, D}, oM);   // h_{t-1} per head: the products' input
  Tensor gates = work({NG, B, G}, oT);    // ĩ, f̃, tanh z̃, σ(õ)
  Tensor A = at::empty({NH, B, G4}, oM);  // h_{t-1} R^T of one step, per head
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  ns[0].copy_(n0);
  ms[0].copy_(m0);
  HD.select(1, 0).copy_(h0.reshape({B, NH, D}).permute({1, 0, 2}));

  const M* xp = xw.data_ptr<M>();
  const int64_t* lp = ptr<int64_t>(len);
  M *outp = out.data_ptr<M>(), *hdp = HD.data_ptr<M>();
  T *csp = cs.data_ptr<T>(), *nsp = ns.data_ptr<T>(), *msp = ms.data_ptr<T>();
  T *hsp = hs.data_ptr<T>(), *gp = gates.data_ptr<T>();
  auto st = [&](int64_t t, int64_t b) { return ((t % NS) * B + b) * H; };   // state rows
  auto hd = [&](int64_t k, int64_t t, int64_t b) { return ((k * NI + t % NI) * B + b) * D; };

  // the gate pass of step t for rows [b0, b1); Ak[k] holds head k's products for all rows
  auto gate_rows = [&](int64_t t, int64_t b0, int64_t b1, M* const* Ak) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = t * B + b;
      const T *cp = csp + st(t, b), *np = nsp + st(t, b), *mp = msp + st(t, b);
      T *cn = csp + st(t + 1, b), *nn = nsp + st(t + 1, b), *mn = msp + st(t + 1, b);
      const T* hp = hsp + ((t & 1) * B + b) * H;
      T* hn = hsp + (((t + 1) & 1) * B + b) * H;
      M* o = outp + r * H;
      T* g = gp + ((t % NG) * B + b) * G;
      if (!active(lp, b, t)) {  // a padded step: state unchanged, output 0
        std::copy(cp, cp + H, cn);
        std::copy(np, np + H, nn);
        std::copy(mp, mp + H, mn);
        std::copy(hp, hp + H, hn);
        zero_row(o, H);
        zero_row(g, G);
      } else {
        for (int64_t k = 0; k < NH; ++k) {
          const M* x = xp + t * xT + b * xB + k * xK;
          const M* a = Ak[k] + b * G4;
          const int64_t u0 = k * D;
          IVDEP
          for (int64_t j = 0; j < D; ++j) {
            const int64_t u = u0 + j;
            const T ir = static_cast<T>(x[j]) + static_cast<T>(a[j]);
            const T fr = static_cast<T>(x[xG + j]) + static_cast<T>(a[D + j]);
            const T zr = static_cast<T>(x[2 * xG + j]) + static_cast<T>(a[2 * D + j]);
            const T orr = static_cast<T>(x[3 * xG + j]) + static_cast<T>(a[3 * D + j]);
            const T lfm = log_forget<EXPF>(fr) + mp[u];
            const T mx = lfm > ir ? lfm : ir;
            const T m = np[u] == T(0) ? ir : mx;
            const T ig = exp_(ir - m);
            const T dl = lfm - m;
            const T fg = exp_(dl < T(0) ? dl : T(0));
            const T zt = tanh_(zr), og = sigm(orr);
            const T c = fg * cp[u] + ig * zt, n = fg * np[u] + ig;
            const T h = og * c / n;
            g[u] = ir;
            g[H + u] = fr;
            g[2 * H + u] = zt;
            g[3 * H + u] = og;
            cn[u] = c;
            nn[u] = n;
            mn[u] = m;
            hn[u] = h;
            o[u] = static_cast<M>(h);
          }
        }
      }
      if (t + 1 < Tn) {
        for (int64_t k = 0; k < NH; ++k) {
          M* q = hdp + hd(k, t + 1, b);
          const T* hk = hn + k * D;
          IVDEP
          for (int64_t j = 0; j < D; ++j) q[j] = static_cast<M>(hk[j]);
        }
      }
    }
  };

  std::vector<Tensor> w_k = w_hh.unbind(0);
  if (own_gemm_ok<M>()) {
#if LSTMKIT_VECTOR_EXT
    // float32: each thread runs the whole recurrence over its share of the batch (rows are
    // independent), per-head products with our own tiled product, no barrier per step
    std::vector<PackedB> wp;
    wp.reserve(NH);
    for (int64_t k = 0; k < NH; ++k) wp.emplace_back(w_k[k]);
    std::vector<M*> Ak(NH);
    for (int64_t k = 0; k < NH; ++k) Ak[k] = A.data_ptr<M>() + k * B * G4;
    const int64_t nt =
        std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (B + MR - 1) / MR));
    const int64_t chunk = ((B + nt - 1) / nt + MR - 1) / MR * MR;
    at::parallel_for(0, nt, 1, [&](int64_t c0_, int64_t c1_) {
      for (int64_t c = c0_; c < c1_; ++c) {
        const int64_t b0 = std::min(B, c * chunk), b1 = std::min(B, b0 + chunk);
        if (b0 >= b1) continue;
        for (int64_t t = 0; t < Tn; ++t) {
          for (int64_t k = 0; k < NH; ++k) {
            // the products also pull the step's input projections into the cache: all of a
            // row's with the first head when rows are contiguous, else each head's own
            const bool per_head = xK > xB;
            const M* pf = per_head || k == 0 ? xp + t * xT + b0 * xB + (per_head ? k * xK : 0)
                                             : nullptr;
            gemm_rows(reinterpret_cast<const float*>(hdp + hd(k, t, b0)), D, wp[k],
                      reinterpret_cast<float*>(Ak[k] + b0 * G4), G4, b1 - b0,
                      reinterpret_cast<const char*>(pf),
                      (b1 - b0) * xB * static_cast<int64_t>(sizeof(M)));
          }
          gate_rows(t, b0, b1, Ak.data());
        }
      }
    });
#endif
  } else {
    std::vector<StepProduct> rec;
    rec.reserve(NH);
    for (int64_t k = 0; k < NH; ++k) rec.emplace_back(w_k[k], B);
    std::vector<Tensor> Ab = A.unbind(0);
    std::vector<M*> Ak(NH);
    for (int64_t t = 0; t < Tn; ++t) {
      for (int64_t k = 0; k < NH; ++k) {
        Tensor in = HD.select(0, k).select(0, t % NI);
        Tensor a = rec[k](in, Ab[k]);
        Ak[k] = a.data_ptr<M>();
        if (a.data_ptr() != Ab[k].data_ptr()) Ab[k] = a;  // keep the packed product's result alive
      }
      at::parallel_for(0, B, grain(G),
                       [&](int64_t b0, int64_t b1) { gate_rows(t, b0, b1, Ak.data()); });
      Ab = A.unbind(0);
    }
  }
  const int64_t last = Tn % NS;
  Tensor h_n = hs[Tn & 1].to(sM, false, true), c_n = cs[last].to(sM, false, true);
  Tensor n_n = ns[last].to(sM, false, true), m_n = ms[last].to(sM, false, true);
  if (!save) return {out, h_n, c_n, n_n, m_n};
  return {out, h_n, c_n, n_n, m_n, cs, ns, ms, HD, gates};
}

template <typename T, typename M, bool EXPF>
std::vector<Tensor> slstm_bwd_(const Tensor& dout_in, const Tensor& dhn, const Tensor& dcn,
                               const Tensor& dnn, const Tensor& dmn,
                               const std::vector<Tensor>& saved, const Tensor& w_hh,
                               const OptT& len_, bool need_w, Tensor& dxw) {
  const auto sT = c10::CppTypeToScalarType<T>::value;
  const auto sM = c10::CppTypeToScalarType<M>::value;
  const Tensor cs = saved.at(0), ns = saved.at(1), ms = saved.at(2), HD = saved.at(3);
  const Tensor gates = saved.at(4);
  const int64_t Tn = gates.size(0), B = gates.size(1), G = gates.size(2), H = G / 4;
  const int64_t NH = w_hh.size(0), D = w_hh.size(2), G4 = 4 * D;
  auto oT = gates.options().dtype(sT);
  auto oM = gates.options().dtype(sM);
  Tensor len = len_.has_value() && len_->defined() ? len_->to(at::kLong).contiguous() : Tensor();
  Tensor dout = dout_in.to(sM).contiguous();

  // xw's gradient, in xw's layout (dxw: a (T, B, 4, heads, d) view Python allocated so)
  const int64_t xT = dxw.stride(0), xB = dxw.stride(1), xG = dxw.stride(2), xK = dxw.stride(3);
  TORCH_CHECK(dxw.dim() == 5 && dxw.size(0) == Tn && dxw.size(1) == B && dxw.stride(4) == 1 &&
                  dxw.scalar_type() == sM,
              "sLSTM backward: dxw must be a (T, B, 4, heads, d) view, got ", dxw.sizes());
  Tensor dA = work({NH, Tn, B, G4}, oM);  // the products' gradient, per head
  Tensor dhd = at::empty({NH, B, D}, oM);
  Tensor dh = dhn.to(sT).contiguous().clone(), dc = dcn.to(sT).contiguous().clone();
  Tensor dn = dnn.to(sT).contiguous().clone(), dm = dmn.to(sT).contiguous().clone();

  const int64_t* lp = ptr<int64_t>(len);
  const T *csp = cs.data_ptr<T>(), *nsp = ns.data_ptr<T>(), *msp = ms.data_ptr<T>();
  const T* gp = gates.data_ptr<T>();
  const M* doutp = dout.data_ptr<M>();
  M* dXp = dxw.data_ptr<M>();
  T *dhp = dh.data_ptr<T>(), *dcp = dc.data_ptr<T>();
  T *dnp = dn.data_ptr<T>(), *dmp = dm.data_ptr<T>();
  M *dAp = dA.data_ptr<M>(), *dhdp = dhd.data_ptr<M>();
  auto da = [&](int64_t k, int64_t t, int64_t b) { return ((k * Tn + t) * B + b) * G4; };

  std::vector<Tensor> w_k = w_hh.unbind(0);
  std::vector<Tensor> dhd_k = dhd.unbind(0);
  // the backward of step t for rows [b0, b1); pending: dhd holds these rows' share of
  // h_t's gradient from step t + 1's products
  auto grad_rows = [&](int64_t t, int64_t b0, int64_t b1, bool pending) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = t * B + b;
      T* dhr = dhp + b * H;
      if (pending) {  // the recurrent part of h_t's gradient, from step t + 1
        for (int64_t k = 0; k < NH; ++k) {
          const M* q = dhdp + (k * B + b) * D;
          T* dk = dhr + k * D;
          IVDEP
          for (int64_t j = 0; j < D; ++j) dk[j] += static_cast<T>(q[j]);
        }
      }
      if (!active(lp, b, t)) {  // padded: the state's gradient passes through unchanged
        for (int64_t k = 0; k < NH; ++k) {
          for (int64_t q = 0; q < 4; ++q) zero_row(dXp + t * xT + b * xB + k * xK + q * xG, D);
          zero_row(dAp + da(k, t, b), G4);
        }
        continue;
      }
      const T* g = gp + r * G;
      const T *cp = csp + r * H, *np = nsp + r * H, *mp = msp + r * H;
      const T *cn = csp + (r + B) * H, *nn = nsp + (r + B) * H, *mn = msp + (r + B) * H;
      const M* dy = doutp + r * H;
      T *dcr = dcp + b * H, *dnr = dnp + b * H, *dmr = dmp + b * H;
      for (int64_t k = 0; k < NH; ++k) {
        M* dak = dAp + da(k, t, b);
        M* dx = dXp + t * xT + b * xB + k * xK;
        const int64_t u0 = k * D;
        IVDEP
        for (int64_t j = 0; j < D; ++j) {
          const int64_t u = u0 + j;
          const T ir = g[u], fr = g[H + u], zt = g[2 * H + u], og = g[3 * H + u];
          const T lfm = log_forget<EXPF>(fr) + mp[u];
          const T m = mn[u], c = cn[u], n = nn[u];
          const T ig = exp_(ir - m);
          const T dl = lfm - m;
          const T fg = exp_(dl < T(0) ? dl : T(0));
          const T dht = dhr[u] + static_cast<T>(dy[u]);
          const T h = og * c / n;
          const T dog = dht * c / n;
          const T dcv = dcr[u] + dht * og / n;
          const T dnv = dnr[u] - dht * h / n;
          const T dfg = dcv * cp[u] + dnv * np[u];
          const T dig = dcv * zt + dnv;
          const T dzt = dcv * ig;
          const T dd = dl < T(0) ? dfg * fg : T(0);  // through f' = exp(min(lf + m_{t-1} - m, 0))
          const T dmt = dmr[u] - dig * ig - dd;      // m_t's total gradient
          // m_t = ĩ (n_{t-1} = 0 or ĩ the larger) or lf + m_{t-1}: its gradient goes there
          const bool from_f = np[u] != T(0) && lfm > ir;
          const T dir = dig * ig + (from_f ? T(0) : dmt);
          const T dlf = dd + (from_f ? dmt : T(0));
          const T dfr = EXPF ? dlf : dlf * (T(1) - sigm(fr));
          const T dzr = dzt * (T(1) - zt * zt);
          const T dor = dog * og * (T(1) - og);
          dx[j] = static_cast<M>(dir);
          dx[xG + j] = static_cast<M>(dfr);
          dx[2 * xG + j] = static_cast<M>(dzr);
          dx[3 * xG + j] = static_cast<M>(dor);
          dak[j] = static_cast<M>(dir);
          dak[D + j] = static_cast<M>(dfr);
          dak[2 * D + j] = static_cast<M>(dzr);
          dak[3 * D + j] = static_cast<M>(dor);
          dcr[u] = dcv * fg;
          dnr[u] = dnv * fg;
          dmr[u] = dlf;  // lf + m_{t-1}: m_{t-1} gets what lf gets
          dhr[u] = T(0);  // h_{t-1} reaches step t only through the product (pending)
        }
      }
    }
  };
  // dh0 += the last products' share, for rows [b0, b1)
  auto add_last = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t k = 0; k < NH; ++k) {
        const M* q = dhdp + (k * B + b) * D;
        T* dk = dhp + b * H + k * D;
        for (int64_t j = 0; j < D; ++j) dk[j] += static_cast<T>(q[j]);
      }
  };
  if (own_gemm_ok<M>()) {
#if LSTMKIT_VECTOR_EXT
    // float32: rows are independent in the backward too, so each thread runs every step
    // (backwards) on its own rows, with our own product of its rows' dA by each R_k
    std::vector<PackedB> wpt;
    wpt.reserve(NH);
    for (int64_t k = 0; k < NH; ++k) wpt.emplace_back(w_k[k].t());
    const int64_t nt =
        std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (B + MR - 1) / MR));
    const int64_t chunk = ((B + nt - 1) / nt + MR - 1) / MR * MR;
    auto products = [&](int64_t t, int64_t b0, int64_t b1) {  // dhd rows = dA_t rows R_k
      for (int64_t k = 0; k < NH; ++k)
        gemm_rows(reinterpret_cast<const float*>(dAp + da(k, t, b0)), G4, wpt[k],
                  reinterpret_cast<float*>(dhdp + (k * B + b0) * D), D, b1 - b0);
    };
    at::parallel_for(0, nt, 1, [&](int64_t c0_, int64_t c1_) {
      for (int64_t c = c0_; c < c1_; ++c) {
        const int64_t b0 = std::min(B, c * chunk), b1 = std::min(B, b0 + chunk);
        if (b0 >= b1) continue;
        for (int64_t t = Tn - 1; t >= 0; --t) {
          if (t + 1 < Tn) products(t + 1, b0, b1);
          grad_rows(t, b0, b1, t + 1 < Tn);
        }
        if (Tn > 0) {
          products(0, b0, b1);
          add_last(b0, b1);
        }
      }
    });
#endif
  } else {
    for (int64_t t = Tn - 1; t >= 0; --t) {
      at::parallel_for(0, B, grain(G),
                       [&](int64_t b0, int64_t b1) { grad_rows(t, b0, b1, t + 1 < Tn); });
      for (int64_t k = 0; k < NH; ++k) gemm(dA.select(0, k).select(0, t), w_k[k], dhd_k[k]);
    }
    if (Tn > 0) add_last(0, B);
  }

  Tensor dw;
  if (need_w) {
    dw = at::empty({NH, G4, D}, oM);
    for (int64_t k = 0; k < NH; ++k) {
      Tensor dwk = dw.select(0, k);
      gemm(dA.select(0, k).view({Tn * B, G4}).t(), HD.select(0, k).view({Tn * B, D}), dwk);
    }
  }
  return {dh, dc, dn, dm, dw};
}

template <typename T, typename M>
std::vector<Tensor> slstm_fwd(const Tensor& xw, const Tensor& h0, const Tensor& c0,
                              const Tensor& n0, const Tensor& m0, const Tensor& w_hh,
                              const OptT& len, bool exp_forget, bool save) {
  return exp_forget ? slstm_fwd_<T, M, true>(xw, h0, c0, n0, m0, w_hh, len, save)
                    : slstm_fwd_<T, M, false>(xw, h0, c0, n0, m0, w_hh, len, save);
}

template <typename T, typename M>
std::vector<Tensor> slstm_bwd(const Tensor& dout, const Tensor& dhn, const Tensor& dcn,
                              const Tensor& dnn, const Tensor& dmn,
                              const std::vector<Tensor>& saved, const Tensor& w_hh,
                              const OptT& len, bool exp_forget, bool need_w, Tensor& dxw) {
  return exp_forget
             ? slstm_bwd_<T, M, true>(dout, dhn, dcn, dnn, dmn, saved, w_hh, len, need_w, dxw)
             : slstm_bwd_<T, M, false>(dout, dhn, dcn, dnn, dmn, saved, w_hh, len, need_w, dxw);
}

std::vector<Tensor> slstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                  const Tensor& n0, const Tensor& m0, const Tensor& w_hh,
                                  const OptT& len, bool exp_forget, bool save) {
  return LSTMKIT_DISPATCH(xw.scalar_type(), slstm_fwd, xw, h0, c0, n0, m0, w_hh, len, exp_forget,
                          save);
}

// Writes xw's gradient into dxw (allocated by Python in xw's layout); returns the gradients
// of h0, c0, n0, m0 and w_hh (undefined without need_w).
std::vector<Tensor> slstm_backward(const Tensor& dout, const Tensor& dhn, const Tensor& dcn,
                                   const Tensor& dnn, const Tensor& dmn,
                                   const std::vector<Tensor>& saved, const Tensor& w_hh,
                                   const OptT& len, bool exp_forget, bool need_w, Tensor dxw) {
  return LSTMKIT_DISPATCH(w_hh.scalar_type(), slstm_bwd, dout, dhn, dcn, dnn, dmn, saved, w_hh,
                          len, exp_forget, need_w, dxw);
}
