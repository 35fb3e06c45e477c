// Pictures and training read-outs: noise/corruption strips, SVG plots (well-formed, with the
// expected lines, ticks and labels), nice ticks, EMA smoothing, the progress bar's formatting,
// the metrics logger, and JSON with Python's non-finite literals.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "diffuse/autograd/reduce.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/schedulers/ddpm.hpp"
#include "diffuse/training/metrics.hpp"
#include "diffuse/training/progress.hpp"
#include "diffuse/viz/plots.hpp"
#include "diffuse/viz/strips.hpp"
#include "diffuse/viz/svg_plot.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using Catch::Contains;
using diffuse::testing::TempDir;
using diffuse::testing::write_bytes;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + 1)) ++n;
  return n;
}

// A small XML well-formedness check: every element closed in order, attributes quoted, no
// stray '<' or '&' in text. Returns an empty string or the first problem.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  bool root_seen = false;
  while (i < s.size()) {
    if (s[i] != '<') {
      if (s[i] == '&') {
        const auto semi = s.find(';', i);
        const std::string ent = s.substr(i, semi == std::string::npos ? 0 : semi - i + 1);
        if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;")
          return "bad entity at " + std::to_string(i);
      }
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(s[i]))) return "text outside the root";
      ++i;
      continue;
    }
    const auto end = s.find('>', i);
    if (end == std::string::npos) return "unterminated tag";
    std::string tag = s.substr(i + 1, end - i - 1);
    if (count(tag, "\"") % 2) return "unbalanced quotes in <" + tag + ">";
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        return "</" + name + "> does not close <" + (stack.empty() ? "" : stack.back()) + ">";
      stack.pop_back();
    } else {
      const bool self = tag.back() == '/';
      const std::string name = tag.substr(0, tag.find_first_of(" /\n"));
      if (stack.empty()) {
        if (root_seen) return "a second root element";
        root_seen = true;
      }
      if (!self) stack.push_back(name);
    }
    i = end + 1;
  }
  return stack.empty() ? (root_seen ? "" : "no root element") : "<" + stack.back() + "> is not closed";
}

std::vector<std::string> texts_of_class(const std::string& svg, const std::string& cls) {
  std::vector<std::string> out;
  const std::regex re("<text class=\"" + cls + "\"[^>]*>([^<]*)</text>");
  for (std::sregex_iterator it(svg.begin(), svg.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- strips

TEST_CASE("noise_strip: columns follow add_noise at the given timesteps; t = 0 is the image") {
  schedulers::DDPMScheduler<float> ddpm({.num_train_timesteps = 1000});
  Generator g(0);
  Tensor<float> images = g.rand<float>({2, 1, 6, 6}) * 2.0f - 1.0f;  // in [-1,1]
  const std::vector<std::int64_t> ts{0, 250, 999};
  Generator gs(5);
  auto strip = viz::noise_strip(ddpm, images, ts, gs);
  // 2 rows x 3 columns of 6x6 with 2 pixels of padding, gray -> RGB.
  REQUIRE(strip.shape() == Shape{3, 2 * 8 + 2, 3 * 8 + 2});
  // The noise is the first draw of a generator seeded 5; rebuild column k of row n.
  Generator gn(5);
  auto noise = gn.randn<float>(images.shape());
  const auto ac = ddpm.alphas_cumprod();
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::size_t k = 0; k < ts.size(); ++k) {
      const double a = std::sqrt(ac.data()[ts[k]]), b = std::sqrt(1 - ac.data()[ts[k]]);
      for (std::int64_t y = 0; y < 6; ++y)
        for (std::int64_t x = 0; x < 6; ++x) {
          const double v = a * images.at({n, 0, y, x}) + b * noise.at({n, 0, y, x});
          const double shown = std::clamp((v + 1) / 2, 0.0, 1.0);  // value range [-1,1] -> [0,1]
          REQUIRE(strip.at({1, 2 + n * 8 + y, 2 + std::int64_t(k) * 8 + x}) == Approx(shown).margin(1e-5));
        }
    }
  CHECK_THROWS_WITH(viz::noise_strip(ddpm, images, {}, g), Contains("no timesteps"));
  CHECK_THROWS_WITH(viz::noise_strip(ddpm, images, {1000}, g), Contains("1000"));
  CHECK_THROWS_WITH(viz::noise_strip(ddpm, Tensor<float>::zeros({4, 4}), {0}, g), Contains("[N,C,H,W]"));
  // One image [C,H,W] is a one-row strip.
  CHECK(viz::noise_strip(ddpm, images[0], ts, g).shape() == Shape{3, 8 + 2, 3 * 8 + 2});
}

TEST_CASE("corruption_strip: amount 0 keeps the image, amount 1 is pure uniform noise") {
  Generator g(1);
  Tensor<float> images = Tensor<float>::full({1, 1, 16, 16}, 0.25f);
  auto strip = viz::corruption_strip(images, {0.0, 0.5, 1.0}, g);
  REQUIRE(strip.shape() == Shape{3, 18 + 2, 3 * 18 + 2});
  double mean1 = 0;
  for (std::int64_t y = 0; y < 16; ++y)
    for (std::int64_t x = 0; x < 16; ++x) {
      CHECK(strip.at({0, 2 + y, 2 + x}) == 0.25f);
      const float half = strip.at({0, 2 + y, 2 + 18 + x});
      CHECK((half >= 0.125f && half <= 0.625f));  // 0.5 * 0.25 + 0.5 * U[0,1)
      mean1 += strip.at({0, 2 + y, 2 + 36 + x}) / 256.0;
    }
  CHECK(mean1 == Approx(0.5).margin(0.08));
  CHECK_THROWS_WITH(viz::corruption_strip(images, {1.5}, g), Contains("not in [0, 1]"));
}

// ---------------------------------------------------------------- ticks and smoothing

TEST_CASE("nice_ticks and log_ticks: 1-2-5 steps enclosing the range") {
  CHECK(viz::nice_ticks(0, 1) == std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0});
  auto t = viz::nice_ticks(0, 999);
  CHECK(t.front() == 0);
  CHECK(t.back() == 1000);
  CHECK(t[1] == 200);
  auto u = viz::nice_ticks(0.0123, 0.0871);
  CHECK(u.front() <= 0.0123);
  CHECK(u.back() >= 0.0871);
  const double step = u[1] - u[0];
  CHECK(step == Approx(0.02).epsilon(1e-9));  // 1-2-5 step for ~6 ticks over 0.075
  CHECK(u == std::vector<double>{0.0, 0.02, 0.04, 0.06, 0.08, 0.1});
  CHECK(viz::nice_ticks(5, 5).size() >= 2);  // a flat line still gets an axis

  CHECK(viz::log_ticks(0.001, 1.0) == std::vector<double>{0.001, 0.01, 0.1, 1.0});
  auto l = viz::log_ticks(0.03, 0.4);  // under a decade: 1-2-5 subdivisions
  CHECK(l.front() <= 0.03);
  CHECK(l.back() >= 0.4);
  CHECK(std::find_if(l.begin(), l.end(), [](double v) { return std::abs(v - 0.2) < 1e-12; }) != l.end());
  CHECK_THROWS_WITH(viz::log_ticks(0, 1), Contains("positive"));
}

TEST_CASE("ema: bias-corrected exponential moving average") {
  auto s = viz::ema({4, 4, 4, 4}, 0.9);
  for (double v : s) CHECK(v == Approx(4));  // no warm-up bias
  auto r = viz::ema({0, 10}, 0.5);
  CHECK(r[0] == 0);
  CHECK(r[1] == Approx((0.5 * 0.5 * 0 + 0.5 * 10) / 0.75));
  auto n = viz::ema({NAN, 2, NAN, 4}, 0.0);
  CHECK(std::isnan(n[0]));
  CHECK(n[2] == 2);
  CHECK(n[3] == 4);
  CHECK_THROWS_WITH(viz::ema({1}, 1.0), Contains("smoothing"));
}

// ---------------------------------------------------------------- SVG plots

TEST_CASE("SvgPlot: well-formed SVG with one polyline per unbroken run, ticks, labels and legend") {
  viz::SvgPlot plot({.title = "Loss <&> curve", .xlabel = "step", .ylabel = "loss"});
  plot.add_line({0, 1, 2, 3, 4}, {1.0, 0.8, NAN, 0.5, 0.4}, {.label = "raw"});  // the NaN splits it in two
  plot.add_line({0.9, 0.7, 0.6}, {.label = "smooth", .dashed = true});
  const std::string svg = plot.svg();
  INFO(svg);
  CHECK(xml_problem(svg).empty());
  CHECK(xml_problem("<svg><g></svg>") != "");  // the checker itself catches mistakes
  CHECK(count(svg, "<polyline") == 3);
  CHECK(count(svg, "stroke-dasharray") == 2);  // the dashed line and its legend entry
  CHECK_THAT(svg, Contains("Loss &lt;&amp;&gt; curve"));
  CHECK(texts_of_class(svg, "xlabel") == std::vector<std::string>{"step"});
  CHECK(texts_of_class(svg, "ylabel") == std::vector<std::string>{"loss"});
  CHECK(texts_of_class(svg, "xtick") == std::vector<std::string>{"0", "1", "2", "3", "4"});
  const auto yt = texts_of_class(svg, "ytick");
  CHECK(yt == std::vector<std::string>{"0.4", "0.6", "0.8", "1.0"});
  CHECK_THAT(svg, Contains(">raw</text>") && Contains(">smooth</text>"));

  // Log axis: decade ticks; non-positive values are left out.
  viz::SvgPlot lg({.ylabel = "loss", .log_y = true});
  lg.add_line({1.0, 0.1, 0.0, 0.01, 0.001});
  const std::string ls = lg.svg();
  CHECK(xml_problem(ls).empty());
  CHECK(texts_of_class(ls, "ytick") == std::vector<std::string>{"0.001", "0.01", "0.1", "1"});
  CHECK(count(ls, "<polyline") == 2);

  // A long series is thinned to a few points per pixel column but keeps its extremes.
  std::vector<double> many(100000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = i == 77777 ? 50.0 : std::sin(i * 0.001);
  const std::string big = viz::SvgPlot().add_line(many).svg();
  CHECK(big.size() < 200000);
  CHECK(std::stod(texts_of_class(big, "ytick").back()) >= 50);  // the spike is kept

  TempDir dir;
  plot.save(dir / "plot.svg");
  CHECK(read_text(dir / "plot.svg") == svg);
  CHECK_THROWS_WITH(viz::SvgPlot().add_line({1, 2}, {1}, {.label = "bad"}),
                    Contains("bad") && Contains("2 x values"));
  CHECK_THROWS_WITH(viz::SvgPlot({.width = 10}), Contains("size"));
}

TEST_CASE("loss_plot and schedule_plot: the expected curves") {
  std::vector<double> losses;
  for (int i = 0; i < 300; ++i) losses.push_back(1.0 / (1 + i * 0.05) + 0.05 * std::sin(i));
  const std::string lin = viz::loss_plot(losses).svg();
  CHECK(xml_problem(lin).empty());
  CHECK(count(lin, "<polyline") == 2);
  CHECK_THAT(lin, Contains(">raw</text>") && Contains(">EMA 0.98</text>"));
  const std::string lg = viz::loss_plot(losses, {.log_y = true}).svg();
  CHECK_THAT(lg, Contains("loss (log scale)"));
  CHECK(texts_of_class(lg, "ytick").front() == "0.01");  // min loss ~0.016 -> 2-5 subdivided decade

  schedulers::DDPMScheduler<float> lin_s({.beta_schedule = "linear"}),
      cos_s({.beta_schedule = "squaredcos_cap_v2"});
  const std::string one = viz::schedule_plot(lin_s, "linear").svg();
  CHECK(xml_problem(one).empty());
  CHECK(count(one, "<polyline") == 2);
  CHECK_THAT(one, Contains("Noise schedule: linear") && Contains(">sqrt(alphas_cumprod)</text>") &&
                      Contains(">sqrt(1 - alphas_cumprod)</text>"));
  CHECK(texts_of_class(one, "xtick").back() == "1000");
  CHECK(texts_of_class(one, "ytick").front() == "0.0");
  CHECK(texts_of_class(one, "ytick").back() == "1.0");
  const std::string both = viz::schedule_plot<float>({{"linear", &lin_s}, {"cosine", &cos_s}}).svg();
  CHECK(count(both, "<polyline") == 4);
  CHECK_THAT(both, Contains(">cosine: sqrt(1 - alphas_cumprod)</text>"));
}

// ---------------------------------------------------------------- progress bar

TEST_CASE("format_progress: bar, counts, loss, rate and ETA") {
  CHECK(training::format_duration(0) == "00:00");
  CHECK(training::format_duration(75.4) == "01:15");
  CHECK(training::format_duration(3 * 3600 + 61) == "3:01:01");
  CHECK(training::format_duration(-1) == "--:--");

  training::ProgressInfo p{"epoch 3/30", 25, 100, 0.03125, 5.0};
  CHECK(training::format_progress(p, 10) ==
        "epoch 3/30 [==>       ] 25/100  25% | loss 0.03125 | 5.00 it/s | 00:05<00:15");
  p.step = 100, p.loss.reset(), p.elapsed = 200;
  CHECK(training::format_progress(p, 4) == "epoch 3/30 [====] 100/100 100% | 2.00 s/it | 03:20<00:00");
  CHECK(training::format_progress({"", 0, 10, std::nullopt, 0}, 2) ==
        "[  ] 0/10   0% | 0.00 it/s | 00:00<--:--");
  CHECK(training::format_progress({"sampling", 7, 0, std::nullopt, 2}, 5) ==
        "sampling 7 it | 3.50 it/s | 00:02<?");
  p.step = 1, p.elapsed = 4;  // slower than one step a second: seconds per step
  CHECK_THAT(training::format_progress(p), Contains("4.00 s/it"));
}

TEST_CASE("ProgressBar: quiet when not a terminal, draws when forced") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  {
    training::ProgressBar quiet(10, {.desc = "q", .stream = f});  // a file is not a terminal
    CHECK(!quiet.enabled());
    for (int i = 0; i < 10; ++i) quiet.update(1, 0.5);
    CHECK(quiet.step() == 10);
  }
  CHECK(std::ftell(f) == 0);
  {
    training::ProgressBar loud(4, {.desc = "epoch 1/1", .stream = f, .enabled = true, .min_interval = 0});
    for (int i = 0; i < 4; ++i) loud.update(1, 0.25);
  }
  std::rewind(f);
  std::string out(4096, '\0');
  out.resize(std::fread(out.data(), 1, out.size(), f));
  std::fclose(f);
  CHECK_THAT(out, Contains("\repoch 1/1 [") && Contains("4/4 100% | loss 0.25"));
  CHECK(out.back() == '\n');
}

// ---------------------------------------------------------------- metrics

TEST_CASE("MetricsLogger: CSV and JSON lines, flushed per line, resumable after a torn line") {
  TempDir dir;
  {
    training::MetricsLogger log(dir / "m.csv");
    log.log({{"step", 1}, {"loss", 0.5}, {"note", "warm, up"}});
    // Flushed: the file holds the line while the logger is still open.
    CHECK(read_text(dir / "m.csv") == "step,loss,note\n1,0.5,\"warm, up\"\n");
    log.log({{"step", 2}, {"loss", NAN}});
    CHECK_THROWS_WITH(log.log({{"step", 3}, {"lr", 0.1}}), Contains("'lr' is not a column"));
    CHECK(log.rows() == 2);
  }
  // A crash tore the last line; appending cuts it off and continues under the same header.
  {
    std::ofstream torn(dir / "m.csv", std::ios::app);
    torn << "3,0.2";
  }
  {
    training::MetricsLogger log(dir / "m.csv", {.append = true});
    log.log({{"loss", 0.25}, {"step", 3}});  // key order does not matter after the header
  }
  CHECK(read_text(dir / "m.csv") == "step,loss,note\n1,0.5,\"warm, up\"\n2,nan,\n3,0.25,\n");
  auto rows = training::read_metrics(dir / "m.csv");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["note"] == "warm, up");
  CHECK(rows[0]["step"] == 1);
  CHECK(std::isnan(rows[1]["loss"].get<double>()));
  CHECK(!rows[1].contains("note"));
  CHECK(rows[2]["loss"] == 0.25);

  {
    training::MetricsLogger log(dir / "m.jsonl");
    log.log({{"step", 1}, {"loss", 0.125}, {"epoch", 0}});
    log.log({{"step", 2}, {"loss", INFINITY}, {"lr", 1e-4}});
  }
  CHECK(read_text(dir / "m.jsonl") ==
        "{\"step\":1,\"loss\":0.125,\"epoch\":0}\n{\"step\":2,\"loss\":Infinity,\"lr\":0.0001}\n");
  auto j = training::read_metrics(dir / "m.jsonl");
  REQUIRE(j.size() == 2);
  CHECK(std::isinf(j[1]["loss"].get<double>()));
  CHECK(j[1]["lr"] == 1e-4);
  CHECK_THROWS_AS(training::MetricsLogger(dir / "no" / "such" / "m.csv"), FileError);
  CHECK_THROWS_WITH(training::MetricsLogger(dir / "x.csv").log({{"a", {1, 2}}}), Contains("'a' is array"));
  {  // a first row refused leaves no columns behind (the header was written as "a,b,a,b")
    training::MetricsLogger log(dir / "y.csv");
    CHECK_THROWS_AS(log.log({{"a", 1}, {"b", {1, 2}}}), Error);
    log.log({{"a", 1}, {"b", 2}});
  }
  CHECK(read_text(dir / "y.csv") == "a,b\n1,2\n");

  // A row: its metrics in order; a name twice, a missing name and a JSON line that is not an
  // object are errors that say so.
  const training::MetricsRow row = {{"b", 1}, {"a", "x"}};
  CHECK(row.begin()->first == "b");
  CHECK(row.size() == 2);
  CHECK_THROWS_WITH((training::MetricsRow{{"a", 1}, {"a", 2}}), Contains("metric 'a' is given twice"));
  CHECK_THROWS_WITH(row.at("c"), Contains("no metric 'c' (the row holds: b, a)"));
  write_bytes(dir / "bad.jsonl", "{\"a\":1}\n[1,2]\n");
  CHECK_THROWS_WITH(training::read_metrics(dir / "bad.jsonl"),
                    Contains("line 2 is array, not an object of metrics"));
}

// ---------------------------------------------------------------- JSON with Python's literals

TEST_CASE("read_json accepts NaN, Infinity and -Infinity as Python writes them") {
  TempDir dir;
  std::ofstream(dir / "c.json")
      << R"({"lambda_min_clipped": -Infinity, "x": [NaN, Infinity, 1.5], "s": "NaN -Infinity"})";
  auto j = io::read_json(dir / "c.json");
  CHECK(std::isinf(j["lambda_min_clipped"].get<double>()));
  CHECK(j["lambda_min_clipped"].get<double>() < 0);
  CHECK(std::isnan(j["x"][0].get<double>()));
  CHECK(j["x"][1].get<double>() > 1e308);
  CHECK(j["x"][2] == 1.5);
  CHECK(j["s"] == "NaN -Infinity");  // inside strings nothing changes
  std::ofstream(dir / "bad.json") << R"({"a": Infinit})";
  CHECK_THROWS_WITH(io::read_json(dir / "bad.json"), Contains("bad.json") && Contains("invalid JSON"));
}
