// Modules, optimizers against PyTorch's numbers, and the from-scratch notebook's BasicUNet.
#include <catch2/catch.hpp>

#include "diffuse/autograd/gradcheck.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/optim/adam.hpp"
#include "diffuse/optim/sgd.hpp"

using namespace diffuse;

namespace {
// The loss used to produce the PyTorch reference trajectories below (torch 1.13, float64):
// sum((p - c)^2 * w) + 0.1 * sum(p^3), five steps from p = [1, -2, 0.5].
template <class Opt>
std::vector<double> run_optimizer(std::function<std::unique_ptr<Opt>(std::vector<Tensor<double>>)> make) {
  Tensor<double> p({3}, {1.0, -2.0, 0.5});
  p.requires_grad_();
  auto opt = make({p});
  Tensor<double> c({3}, {0.3, 0.1, -0.2}), w({3}, {1, 2, 3});
  for (int i = 0; i < 5; ++i) {
    opt->zero_grad();
    auto loss = sum(square(p - c) * w) + sum(pow(p, 3.0)) * 0.1;
    loss.backward();
    opt->step();
  }
  return p.to_vector();
}
void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12).margin(1e-12));
}
}  // namespace

TEST_CASE("Adam and SGD follow torch.optim step for step") {
  using optim::Adam, optim::SGD, optim::AdamOptions, optim::SGDOptions;
  check_close(run_optimizer<Adam<double>>(
                  [](auto ps) { return std::make_unique<Adam<double>>(ps, AdamOptions{.lr = 0.1}); }),
              {0.5154086418597316, -1.5022405176443159, 0.014981539954195378});
  check_close(run_optimizer<Adam<double>>([](auto ps) {
                return std::make_unique<Adam<double>>(
                    ps,
                    AdamOptions{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
              }),
              {0.7543183706576562, -1.7509411643535033, 0.2543008792450691});
  check_close(run_optimizer<SGD<double>>(
                  [](auto ps) { return std::make_unique<SGD<double>>(ps, SGDOptions{.lr = 0.05}); }),
              {0.6698528967546895, -0.6751765478766653, -0.08384710389782764});
  check_close(run_optimizer<SGD<double>>([](auto ps) {
                return std::make_unique<SGD<double>>(
                    ps, SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
              }),
              {0.2118982408635064, 1.0235055744231474, -0.7515980186049944});
  check_close(run_optimizer<SGD<double>>([](auto ps) {
                return std::make_unique<SGD<double>>(
                    ps, SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
              }),
              {0.14723181130836774, 0.8970584127490735, -0.45568238195988214});
  Tensor<float> leaf({2});
  leaf.requires_grad_();
  CHECK_THROWS_WITH(optim::Adam<float>({leaf * 2.f}), Catch::Contains("leaf"));
  CHECK_THROWS_WITH(optim::Adam<float>({Tensor<float>()}), Catch::Contains("defined"));
  // A frozen parameter is carried along and left unchanged.
  Tensor<float> frozen({2}, {1, 2});
  optim::Adam<float> opt({leaf, frozen});
  sum(leaf * 3.f).backward();
  opt.step();
  CHECK(frozen.to_vector() == std::vector<float>{1, 2});
  CHECK(leaf.to_vector() != std::vector<float>{0, 0});
}

TEST_CASE("modules: names, state dicts, train/eval") {
  models::BasicUNet<float> net;
  auto named = net.named_parameters();
  REQUIRE(named.size() == 12);
  CHECK(named[0].first == "down_layers.0.weight");
  CHECK(named[0].second.shape() == Shape{32, 1, 5, 5});
  CHECK(named[11].first == "up_layers.2.bias");
  auto state = net.state_dict();
  CHECK(state.size() == 12);

  models::BasicUNet<float> other;
  other.load_state_dict(state);
  CHECK(other.named_parameters()[3].second.to_vector() == named[3].second.to_vector());

  auto missing = state;
  missing.erase("up_layers.1.weight");
  missing["extra.weight"] = Tensor<float>({1});
  CHECK_THROWS_WITH(other.load_state_dict(missing), Catch::Contains("missing keys: up_layers.1.weight") &&
                                                        Catch::Contains("unexpected keys: extra.weight"));
  auto wrong = state;
  wrong["down_layers.0.bias"] = Tensor<float>({31});
  CHECK_THROWS_WITH(other.load_state_dict(wrong),
                    Catch::Contains("down_layers.0.bias (expected [32], got [31])"));
  net.eval();
  CHECK_FALSE(net.is_training());
}

TEST_CASE("BasicUNet has the notebook's 309,057 parameters and maps shape to shape") {
  models::BasicUNet<float> net;
  CHECK(net.num_parameters() == 309057);
  Generator g(0);
  auto x = g.rand<float>({2, 1, 28, 28});
  CHECK(net(x).shape() == Shape{2, 1, 28, 28});
  CHECK(models::BasicUNet<float>(3, 3).num_parameters() == 309057 + 2 * 32 * 25 + 2 * 32 * 25 + 2);
  CHECK_THROWS_WITH(net(g.rand<float>({2, 1, 30, 30})), Catch::Contains("[2, 1, 30, 30]"));
}

TEST_CASE("BasicUNet gradients match finite differences (double, small input)") {
  Generator g(3);
  models::BasicUNet<double> net(1, 1, g);
  Tensor<double> x = g.rand<double>({2, 1, 8, 8});
  // Check the input gradient and one parameter of each depth.
  auto params = net.named_parameters();
  std::vector<Tensor<double>> inputs{x, params[1].second, params[5].second, params[11].second};
  auto r = gradcheck(
      [&](const std::vector<Tensor<double>>& in) {
        Generator w(9);
        auto y = net(in[0]);
        return sum(y * w.randn<double>(y.shape()));
      },
      inputs, 1e-6, 1e-7, 1e-5);
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("corrupt mixes with uniform noise by the given amount") {
  Generator g(1);
  Tensor<float> x = Tensor<float>::full({3, 1, 4, 4}, 0.5f);
  Tensor<float> amount({3}, {0.f, 1.f, 0.25f});
  auto y = models::corrupt(x, amount, g);
  for (int i = 0; i < 16; ++i) CHECK(y[0].data()[i] == 0.5f);
  Generator g2(1);
  auto noise = g2.rand<float>({3, 1, 4, 4});
  for (int i = 0; i < 16; ++i) CHECK(y[1].data()[i] == Approx(noise[1].data()[i]));
  for (int i = 0; i < 16; ++i) CHECK(y[2].data()[i] == Approx(0.375f + 0.25f * noise[2].data()[i]));
  CHECK_THROWS_WITH(models::corrupt(x, Tensor<float>({2}), g), Catch::Contains("[2]"));
}

TEST_CASE("training BasicUNet to denoise lowers the loss") {
  Generator g(0);
  models::BasicUNet<float> net(1, 1, g);
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  // Simple structured images: bright squares at random places.
  auto make_batch = [&] {
    Tensor<float> x = Tensor<float>::zeros({16, 1, 16, 16});
    auto pos = g.randint_list(0, 10, 32);
    for (int b = 0; b < 16; ++b)
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) x.at({b, 0, pos[2 * b] + i, pos[2 * b + 1] + j}) = 1.f;
    return x;
  };
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    auto x = make_batch();
    auto noisy = models::corrupt(x, g.rand<float>({16}), g);
    auto loss = nn::functional::mse_loss(net(noisy), x);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step < 5) first += loss.item() / 5;
    if (step >= 55) last += loss.item() / 5;
  }
  INFO("first " << first << " last " << last);
  CHECK(last < 0.5f * first);
}
