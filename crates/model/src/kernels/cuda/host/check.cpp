// Checks every kernel of ../kernels.cu, run on the host through shim.h: forward passes against
// double-precision loops, backward passes against central differences of those loops, and prints
// the dropout keep-masks it draws so that the Rust test can compare them with the CPU's streams.
// Prints a FAIL line per mismatch and exits 1 if there was any. Built and run by check.rs.
#include <algorithm>
#include <cstdio>
#include <random>

// clang-format off: the shim defines what the kernels use.
#include "shim.h"
#include "../kernels.cu"
// clang-format on

using V = std::vector<float>;
using D = std::vector<double>;
V rnd(size_t n, int seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  V v(n);
  for (auto& x : v) x = u(g);
  return v;
}
dim3 rows_grid(long rows) { return {(unsigned)((rows + 7) / 8), 1, 1}; }
const dim3 ROWB{256, 1, 1};
dim3 ew_grid(long n) { return {(unsigned)std::min<long>((n + 255) / 256, 4096), 1, 1}; }
double worst = 0;
const char* worst_what = "";
int failures = 0;
// `a` (a kernel's) against `b` (the reference), relative to 1 + |b|.
void check(const char* what, double a, double b, double tol) {
  double e = fabs(a - b) / (1 + fabs(b));
  if (e > worst) {
    worst = e;
    worst_what = what;
  }
  if (e > tol) {
    printf("FAIL %s: %g vs %g\n", what, a, b);
    failures++;
  }
}
const uint64_t SEED = 7;
const float P = 0.1f;
const uint32_t THR = (uint32_t)((double)P * 65536.0);
const float KEEP = 1.0f / (1.0f - P);
float mask_of(uint64_t row, uint32_t j, uint32_t thr) {
  return keep_value(stream_state(SEED, row), j, thr, KEEP);
}

// Reference residual layer norm in double: out = LN(y*keep + r)
D ref_rln(const D& y, const D& r, const D& w, const D& b, int rows, int d, float eps, uint32_t thr,
          bool has_res) {
  D out(rows * d);
  for (int i = 0; i < rows; i++) {
    D s(d);
    double mean = 0;
    for (int j = 0; j < d; j++) {
      s[j] = y[i * d + j] * mask_of(i, j, thr) + (has_res ? r[i * d + j] : 0);
      mean += s[j];
    }
    mean /= d;
    double var = 0;
    for (int j = 0; j < d; j++) var += (s[j] - mean) * (s[j] - mean);
    var /= d;
    double rstd = 1 / sqrt(var + eps);
    for (int j = 0; j < d; j++) out[i * d + j] = (s[j] - mean) * rstd * w[j] + b[j];
  }
  return out;
}
double dot(const D& a, const V& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}
D todouble(const V& v) { return D(v.begin(), v.end()); }

void test_rln(bool has_res, uint32_t thr, int rows, int d) {
  float eps = 1e-5f;
  V y = rnd(rows * d, 1), r = rnd(rows * d, 2), w = rnd(d, 3), b = rnd(d, 4), g = rnd(rows * d, 5);
  V out(rows * d);
  emulated::launch(rows_grid(rows), ROWB, [&] {
    residual_layer_norm_fwd(y.data(), has_res ? r.data() : nullptr, w.data(), b.data(), out.data(),
                            rows, d, eps, SEED, thr, KEEP);
  });
  D ref = ref_rln(todouble(y), todouble(r), todouble(w), todouble(b), rows, d, eps, thr, has_res);
  for (int i = 0; i < rows * d; i++) check("rln fwd", out[i], ref[i], 1e-4);
  V gs(rows * d), gy(rows * d), xhat(rows * d), params(2 * d, 0.0f);
  emulated::launch(rows_grid(rows), ROWB, [&] {
    residual_layer_norm_bwd(y.data(), has_res ? r.data() : nullptr, w.data(), g.data(), gs.data(),
                            thr ? gy.data() : nullptr, xhat.data(), rows, d, eps, SEED, thr, KEEP);
  });
  emulated::launch({(unsigned)((d + 31) / 32), (unsigned)((rows + 255) / 256), 1}, {32, 8, 1},
                   [&] { column_sums(g.data(), xhat.data(), params.data(), rows, d); });
  // finite differences of L = sum(out * g) in double
  auto L = [&](D yy, D rr, D ww, D bb) {
    return dot(ref_rln(yy, rr, ww, bb, rows, d, eps, thr, has_res), g);
  };
  double h = 1e-5;
  for (int k = 0; k < 12; k++) {
    int i = (k * 7919) % (rows * d), j = (k * 31) % d;
    D yy = todouble(y), rr = todouble(r), ww = todouble(w), bb = todouble(b);
    {
      D a = yy, c = yy;
      a[i] += h;
      c[i] -= h;
      double fd = (L(a, rr, ww, bb) - L(c, rr, ww, bb)) / (2 * h);
      check("rln dy", thr ? gy[i] : gs[i], fd, 1e-3);
    }
    if (has_res) {
      D a = rr, c = rr;
      a[i] += h;
      c[i] -= h;
      double fd = (L(yy, a, ww, bb) - L(yy, c, ww, bb)) / (2 * h);
      check("rln dres", gs[i], fd, 1e-3);
    }
    {
      D a = ww, c = ww;
      a[j] += h;
      c[j] -= h;
      double fd = (L(yy, rr, a, bb) - L(yy, rr, c, bb)) / (2 * h);
      check("rln dw", params[j], fd, 1e-3);
    }
    {
      D a = bb, c = bb;
      a[j] += h;
      c[j] -= h;
      double fd = (L(yy, rr, ww, a) - L(yy, rr, ww, c)) / (2 * h);
      check("rln db", params[d + j], fd, 1e-3);
    }
  }
}

D ref_attn(const D& s, const D& m, int rows, int keys, long per_item, float scale, uint32_t thr) {
  D out(rows * keys);
  for (int i = 0; i < rows; i++) {
    const double* mm = &m[(i / per_item) * keys];
    double mx = -1e300;
    for (int j = 0; j < keys; j++) mx = std::max(mx, s[i * keys + j] * scale + mm[j]);
    double sum = 0;
    for (int j = 0; j < keys; j++) sum += exp(s[i * keys + j] * scale + mm[j] - mx);
    for (int j = 0; j < keys; j++)
      out[i * keys + j] = exp(s[i * keys + j] * scale + mm[j] - mx) / sum * mask_of(i, j, thr);
  }
  return out;
}

void test_attn(uint32_t thr) {
  int b = 2, heads = 2, q = 3, keys = 37;
  long per = heads * q;
  int rows = b * per;
  float scale = 0.35f;
  V s = rnd(rows * keys, 11), g = rnd(rows * keys, 12), m(b * keys);
  int lens[2] = {37, 5};
  for (int i = 0; i < b; i++)
    for (int j = 0; j < keys; j++) m[i * keys + j] = j < lens[i] ? 0.0f : -30000.0f;
  V out(rows * keys), gs(rows * keys);
  emulated::launch(rows_grid(rows), ROWB, [&] {
    attention_probs_fwd(s.data(), m.data(), out.data(), rows, keys, per, scale, SEED, thr, KEEP);
  });
  D ref = ref_attn(todouble(s), todouble(m), rows, keys, per, scale, thr);
  for (int i = 0; i < rows * keys; i++) check("attn fwd", out[i], ref[i], 1e-5);
  emulated::launch(rows_grid(rows), ROWB, [&] {
    attention_probs_bwd(s.data(), m.data(), g.data(), gs.data(), rows, keys, per, scale, SEED, thr,
                        KEEP);
  });
  double h = 1e-5;
  for (int k = 0; k < 40; k++) {
    int i = (k * 7919) % (rows * keys);
    D a = todouble(s), c = todouble(s);
    a[i] += h;
    c[i] -= h;
    double fd = (dot(ref_attn(a, todouble(m), rows, keys, per, scale, thr), g) -
                 dot(ref_attn(c, todouble(m), rows, keys, per, scale, thr), g)) /
                (2 * h);
    check("attn dscores", gs[i], fd, 1e-3);
  }
}

void test_misc() {
  long n = 3000;
  V x = rnd(n, 21), g = rnd(n, 22), out(n), gout(n);
  emulated::launch(ew_grid(n), {256, 1, 1}, [&] { gelu_erf_fwd(x.data(), out.data(), n); });
  emulated::launch(ew_grid(n), {256, 1, 1},
                   [&] { gelu_erf_bwd(x.data(), g.data(), gout.data(), n); });
  auto gelu = [](double v) { return 0.5 * v * (1 + erf(v / sqrt(2.0))); };
  for (long i = 0; i < n; i += 37) {
    check("gelu fwd", out[i], gelu(x[i]), 1e-6);
    double fd = (gelu(x[i] + 1e-5) - gelu(x[i] - 1e-5)) / 2e-5 * g[i];
    check("gelu bwd", gout[i], fd, 1e-4);
  }
  // bias add and column sums without xhat
  int rows = 600, d = 70;
  V xb = rnd(rows * d, 23), bias = rnd(d, 24), ob(rows * d), cs(d, 0.0f);
  emulated::launch(ew_grid(rows * d), {256, 1, 1},
                   [&] { add_bias(xb.data(), bias.data(), ob.data(), (long long)rows * d, d); });
  for (int i = 0; i < rows * d; i += 13) check("add bias", ob[i], xb[i] + bias[i % d], 1e-7);
  emulated::launch({(unsigned)((d + 31) / 32), (unsigned)((rows + 255) / 256), 1}, {32, 8, 1},
                   [&] { column_sums(xb.data(), nullptr, cs.data(), rows, d); });
  for (int j = 0; j < d; j++) {
    double s = 0;
    for (int i = 0; i < rows; i++) s += xb[i * d + j];
    check("column sums", cs[j], s, 1e-5);
  }
  // embedding
  int vocab = 50, hidden = 70, ntok = 27;
  V table = rnd(vocab * hidden, 25), emb(ntok * hidden), ge = rnd(ntok * hidden, 26),
    gt(vocab * hidden, 0.0f);
  std::vector<uint32_t> ids(ntok);
  for (int t = 0; t < ntok; t++) ids[t] = t * 7 % 11;
  ids[3] = 99;  // out of range
  emulated::launch(ew_grid(ntok * hidden), {256, 1, 1}, [&] {
    gather_rows_fwd(table.data(), ids.data(), emb.data(), (long long)ntok * hidden, hidden, vocab);
  });
  emulated::launch(ew_grid(ntok * hidden), {256, 1, 1}, [&] {
    gather_rows_bwd(ge.data(), ids.data(), gt.data(), (long long)ntok * hidden, hidden, vocab);
  });
  D gref(vocab * hidden, 0.0);
  for (int t = 0; t < ntok; t++)
    for (int h2 = 0; h2 < hidden; h2++) {
      double want = ids[t] < (uint32_t)vocab ? table[ids[t] * hidden + h2] : 0.0;
      check("gather rows fwd", emb[t * hidden + h2], want, 0);
      if (ids[t] < (uint32_t)vocab) gref[ids[t] * hidden + h2] += ge[t * hidden + h2];
    }
  for (int i = 0; i < vocab * hidden; i++) check("gather rows bwd", gt[i], gref[i], 1e-6);
  // adamw
  V m = rnd(n, 27), v = rnd(n, 28), p = rnd(n, 29);
  for (auto& e : v) e = fabs(e);
  V m0 = m, v0 = v, p0 = p;
  emulated::launch(ew_grid(n), {256, 1, 1},
                   [&] { adamw_moment(m.data(), g.data(), n, 0.9f, 0.5f, 0); });
  emulated::launch(ew_grid(n), {256, 1, 1},
                   [&] { adamw_moment(v.data(), g.data(), n, 0.999f, 0.5f, 1); });
  emulated::launch(ew_grid(n), {256, 1, 1}, [&] {
    adamw_update(p.data(), m.data(), v.data(), n, 0.999f, 0.01f, 0.1f, 0.001f, 1e-8f);
  });
  for (long i = 0; i < n; i += 17) {
    double mm = 0.9 * m0[i] + 0.1 * (0.5 * g[i]), vv = 0.999 * v0[i] + 0.001 * (0.25 * g[i] * g[i]);
    check("adam m", m[i], mm, 1e-6);
    check("adam v", v[i], vv, 1e-6);
    check("adam p", p[i], p0[i] * 0.999 - 0.01 * (mm / 0.1) / (sqrt(vv / 0.001) + 1e-8), 1e-5);
  }
}

int main() {
  for (int r = 0; r < 3; r++) {
    printf("mask %d:", r);
    for (int j = 0; j < 12; j++) printf(" %.7f", mask_of(r, j, THR));
    printf("\n");
  }
  test_rln(false, 0, 5, 50);
  test_rln(true, 0, 19, 64);
  test_rln(true, THR, 19, 384);
  test_attn(0);
  test_attn(THR);
  test_misc();
  printf("worst relative error %g (%s)\n", worst, worst_what);
  return failures ? 1 : 0;
}
