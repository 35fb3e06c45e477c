// Every differentiable op against central finite differences in double, plus autograd
// semantics (accumulation, detach, NoGradGuard, freed graph) and the errors users see.
#include <catch2/catch.hpp>

#include "diffuse/autograd/gradcheck.hpp"
#include "diffuse/autograd/linalg.hpp"
#include "diffuse/autograd/reduce.hpp"
#include "diffuse/autograd/shape_ops.hpp"
#include "diffuse/nn/functional.hpp"

using namespace diffuse;
namespace F = diffuse::nn::functional;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

namespace {
Generator gen(1234);
TD randn(const Shape& s) { return gen.randn<double>(s); }
// A fixed random weighting so that every output element matters to the scalar.
TD weigh(const TD& y) {
  Generator g(99);
  TD w = g.randn<double>(y.shape());
  return sum(y * w);
}
void check(const std::function<TD(const Inputs&)>& f, Inputs in, double atol = 1e-7, double rtol = 1e-5) {
  auto r = gradcheck(f, std::move(in), 1e-6, atol, rtol);
  INFO(r.message);
  CHECK(r.ok);
}
}  // namespace

TEST_CASE("elementwise arithmetic with broadcasting") {
  auto shapes = std::vector<std::pair<Shape, Shape>>{
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 1}, {1, 3, 5}}, {{2, 3, 4, 4}, {1, 3, 1, 1}},
      {{3}, {}},        {{}, {2, 2}}};
  for (auto& [sa, sb] : shapes) {
    INFO(to_string(sa) << " with " << to_string(sb));
    check([](const Inputs& x) { return weigh(x[0] + x[1]); }, {randn(sa), randn(sb)});
    check([](const Inputs& x) { return weigh(x[0] - x[1]); }, {randn(sa), randn(sb)});
    check([](const Inputs& x) { return weigh(x[0] * x[1]); }, {randn(sa), randn(sb)});
    TD denominator = add_scalar(abs(randn(sb)), 0.5);  // away from zero
    check([](const Inputs& x) { return weigh(x[0] / x[1]); }, {randn(sa), denominator});
  }
}

TEST_CASE("scalar arithmetic and unary functions") {
  const Shape s{2, 3, 5};
  check([](const Inputs& x) { return weigh(2.5 * x[0] + 1.0); }, {randn(s)});
  check([](const Inputs& x) { return weigh(1.0 - x[0] / 4.0); }, {randn(s)});
  check([](const Inputs& x) { return weigh(-x[0]); }, {randn(s)});
  check([](const Inputs& x) { return weigh(div_scalar(x[0], 0.3)); }, {randn(s)});
  check([](const Inputs& x) { return weigh(exp(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(sin(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(cos(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(tanh(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(sigmoid(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(silu(x[0])); }, {randn(s)});
  check([](const Inputs& x) { return weigh(square(x[0])); }, {randn(s)});
  TD positive = add_scalar(abs(randn(s)), 0.5);
  check([](const Inputs& x) { return weigh(log(x[0])); }, {positive});
  check([](const Inputs& x) { return weigh(sqrt(x[0])); }, {positive});
  check([](const Inputs& x) { return weigh(pow(x[0], 1.7)); }, {positive});
  // relu, abs and clamp have kinks: keep samples away from them.
  TD away = randn(s);
  for (double& v : away) v = v >= 0 ? v + 0.1 : v - 0.1;
  check([](const Inputs& x) { return weigh(relu(x[0])); }, {away});
  check([](const Inputs& x) { return weigh(abs(x[0])); }, {away});
  check([](const Inputs& x) { return weigh(clamp(x[0], -0.05, 0.05)); }, {away});
}

TEST_CASE("reductions") {
  check([](const Inputs& x) { return sum(x[0]); }, {randn({3, 4})});
  check([](const Inputs& x) { return mean(x[0] * x[0]); }, {randn({2, 3, 4})});
  check([](const Inputs& x) { return weigh(sum(x[0], {1})); }, {randn({2, 3, 4})});
  check([](const Inputs& x) { return weigh(sum(x[0], {0, 2}, true)); }, {randn({2, 3, 4})});
  check([](const Inputs& x) { return weigh(mean(x[0], {-1})); }, {randn({2, 3, 4})});
  check([](const Inputs& x) { return weigh(max(x[0], 1)); }, {randn({2, 5, 3})});
  TD x({2, 3}, {1, 5, 2, -1, -3, -2});
  CHECK(max(x, 1).to_vector() == std::vector<double>{5, -1});
  CHECK(sum(x, {0}).to_vector() == std::vector<double>{0, 2, 0});
  CHECK(mean(x).item() == Approx(1.0 / 3.0));
}

TEST_CASE("matmul, bmm and linear") {
  check([](const Inputs& x) { return weigh(matmul(x[0], x[1])); }, {randn({3, 4}), randn({4, 5})});
  check([](const Inputs& x) { return weigh(matmul(x[0], x[1])); }, {randn({2, 3, 4}), randn({4, 2})});
  check([](const Inputs& x) { return weigh(bmm(x[0], x[1])); }, {randn({3, 2, 4}), randn({3, 4, 5})});
  check([](const Inputs& x) { return weigh(linear(x[0], x[1], x[2])); },
        {randn({2, 3, 4}), randn({5, 4}), randn({5})});
  TD a({2, 2}, {1, 2, 3, 4}), b({2, 2}, {5, 6, 7, 8});
  CHECK(matmul(a, b).to_vector() == std::vector<double>{19, 22, 43, 50});
  CHECK_THROWS_WITH(matmul(randn({2, 3}), randn({4, 5})),
                    Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
}

TEST_CASE("layout: reshape, permute, transpose, slice, select, concat") {
  check([](const Inputs& x) { return weigh(x[0].reshape({4, -1})); }, {randn({2, 3, 2})});
  check([](const Inputs& x) { return weigh(permute(x[0], {2, 0, 1})); }, {randn({2, 3, 4})});
  check([](const Inputs& x) { return weigh(transpose(x[0], 0, 1)); }, {randn({3, 5})});
  check([](const Inputs& x) { return weigh(x[0].slice(1, 3)); }, {randn({4, 3})});
  check([](const Inputs& x) { return weigh(x[0][2]); }, {randn({4, 3})});
  check(
      [](const Inputs& x) {
        return weigh(concat(Inputs{x[0], x[1]}, 1));
      },
      {randn({2, 3, 2}), randn({2, 1, 2})});
  check(
      [](const Inputs& x) {
        return weigh(concat(Inputs{x[0], x[1], x[0]}, 0));
      },
      {randn({2, 3}), randn({1, 3})});
  TD t = TD::arange(0, 6).reshape({2, 3});
  CHECK(transpose(t, 0, 1).to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(t[1].to_vector() == std::vector<double>{3, 4, 5});
  CHECK(t.slice(1, 2).shares_storage(t));
  CHECK_THROWS_WITH(t.reshape({4, 2}), Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_WITH(concat(Inputs{TD({2, 3}), TD({2, 4})}, 0), Catch::Contains("[2, 4]"));
}

TEST_CASE("convolution, normalisation, attention, resampling") {
  for (auto [k, stride, pad] : {std::tuple{1, 1, 0}, {3, 1, 1}, {3, 2, 1}, {5, 1, 2}}) {
    INFO("kernel " << k << " stride " << stride << " padding " << pad);
    check([s = stride, p = pad](const Inputs& x) { return weigh(F::conv2d(x[0], x[1], x[2], s, p)); },
          {randn({2, 3, 6, 5}), randn({4, 3, k, k}), randn({4})});
  }
  check([](const Inputs& x) { return weigh(F::group_norm(x[0], 2, x[1], x[2])); },
        {randn({2, 4, 3, 3}), randn({4}), randn({4})}, 1e-6, 1e-4);
  check([](const Inputs& x) { return weigh(F::softmax(x[0])); }, {randn({3, 2, 5})});
  check([](const Inputs& x) { return weigh(F::scaled_dot_product_attention(x[0], x[1], x[2])); },
        {randn({2, 4, 3}), randn({2, 5, 3}), randn({2, 5, 2})});
  check([](const Inputs& x) { return weigh(F::upsample_nearest2x(x[0])); }, {randn({2, 3, 3, 2})});
  check([](const Inputs& x) { return weigh(F::max_pool2x(x[0])); }, {randn({2, 3, 4, 6})});
  check([](const Inputs& x) { return weigh(F::avg_pool2x(x[0])); }, {randn({2, 3, 4, 6})});
  check([](const Inputs& x) { return F::mse_loss(x[0], x[1]); }, {randn({2, 3, 4}), randn({2, 3, 4})});
}

TEST_CASE("dropout keeps the expected fraction and scales the rest") {
  Generator g(5);
  Tensor<float> x = Tensor<float>::ones({10000});
  auto y = F::dropout(x, 0.25, true, g);
  int zeros = 0;
  for (float v : y) {
    if (v == 0)
      ++zeros;
    else
      CHECK(v == Approx(1 / 0.75));
  }
  CHECK(zeros == Approx(2500).margin(200));
  CHECK(F::dropout(x, 0.25, false, g).is_same(x));
  // gradient flows through kept elements only, scaled the same way
  TD xd = randn({4, 5});
  xd.requires_grad_();
  Generator g2(7);
  auto yd = F::dropout(xd, 0.5, true, g2);
  sum(yd).backward();
  for (std::int64_t i = 0; i < xd.numel(); ++i) CHECK(xd.grad().data()[i] == (yd.data()[i] == 0 ? 0.0 : 2.0));
}

TEST_CASE("autograd semantics") {
  TD x = randn({3});
  x.requires_grad_();
  SECTION("gradients accumulate over backward calls and zero_grad clears them") {
    sum(x * 2.0).backward();
    sum(x * 3.0).backward();
    for (double g : x.grad()) CHECK(g == 5.0);
    x.zero_grad();
    CHECK_FALSE(x.grad().defined());
  }
  SECTION("a tensor used twice gets both contributions") {
    sum(x * x).backward();
    for (int i = 0; i < 3; ++i) CHECK(x.grad().data()[i] == Approx(2 * x.data()[i]));
  }
  SECTION("detach and NoGradGuard cut the graph") {
    CHECK_FALSE((x.detach() * 2.0).requires_grad());
    {
      NoGradGuard guard;
      CHECK_FALSE((x * 2.0).requires_grad());
    }
    CHECK((x * 2.0).requires_grad());
  }
  SECTION("the graph is freed after backward") {
    TD y = sum(exp(x));
    y.backward();
    CHECK_THROWS_WITH(y.backward(), Catch::Contains("already freed"));
  }
  SECTION("backward needs a scalar or an explicit gradient") {
    CHECK_THROWS_WITH((x * 2.0).backward(), Catch::Contains("not a scalar") && Catch::Contains("[3]"));
    (x * 2.0).backward(TD::ones({3}));
    CHECK(x.grad().data()[0] == 2.0);
  }
}

TEST_CASE("errors name the shapes") {
  CHECK_THROWS_AS(TD({2, 3}) + TD({4}), Error);
  CHECK_THROWS_WITH(TD({2, 3}) + TD({4}), Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(sum(TD({2})).backward(), Catch::Contains("does not require grad"));
  CHECK_THROWS_WITH(F::conv2d(TD({1, 3, 8, 8}), TD({4, 2, 3, 3})), Catch::Contains("[1, 3, 8, 8]"));
  CHECK_THROWS_WITH(F::group_norm(TD({1, 6, 2, 2}), 4), Catch::Contains("6 channels"));
  CHECK_THROWS_WITH(F::mse_loss(TD({2, 3}), TD({3, 2})), Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(TD({2, 2}, {1, 2, 3}), Catch::Contains("3 values"));
  CHECK_THROWS_WITH(TD({2, 2})[5], Catch::Contains("out of range"));
  CHECK_THROWS_WITH(matmul(TD({2, 0}), TD({0, 3})), Catch::Contains("empty"));
  CHECK_THROWS_WITH(linear(TD({2, 0}), TD({3, 0})), Catch::Contains("empty"));
  Generator g(1);
  CHECK_THROWS_WITH(F::dropout(TD({2}), std::nan(""), true, g), Catch::Contains("[0, 1]"));
  CHECK_THROWS_WITH(F::dropout(TD({2}), 1.5, true, g), Catch::Contains("[0, 1]"));
}

TEST_CASE("post-accumulate grad hooks run once per backward, when the gradient is complete") {
  Tensor<double> x = Tensor<double>::full({3}, 1.0), w = Tensor<double>::full({3}, 2.0);
  x.requires_grad_();
  w.requires_grad_();
  std::vector<std::string> events;
  std::vector<double> seen;
  x.register_post_accumulate_grad_hook([&] {
    events.push_back("x");
    seen.push_back(x.grad().data()[0]);
  });
  w.register_post_accumulate_grad_hook([&] { events.push_back("w"); });
  // x is used twice, early and late in the graph: its hook waits for both contributions.
  Tensor<double> y = sum(x * 2.0 + (x * w) * 3.0);
  y.backward();
  CHECK(events.size() == 2);
  CHECK(seen == std::vector<double>{2.0 + 3.0 * 2.0});
  y = sum(x * 2.0);
  y.backward();  // accumulates: the hook sees the sum of both backward() calls
  CHECK(seen.back() == 8.0 + 2.0);
  x.clear_post_accumulate_grad_hooks();
  sum(x * 2.0).backward();
  CHECK(seen.size() == 2);
  CHECK_THROWS_WITH((x * 2.0).register_post_accumulate_grad_hook([] {}),
                    Catch::Contains("only leaf tensors"));
}
