// Fuzzes the schedulers' config reading (schedulers/factory.hpp, config.hpp): the input is a
// scheduler_config.json text. Its "_class_name" picks the scheduler; without one, the input's
// byte sum picks one of the eight. A scheduler that was built then sets 1 and 7 inference steps
// and steps through them on a 1x1x2x2 sample, adds noise, and writes its config back (which must
// read again).
#include <numeric>

#include "diffuse/io/json.hpp"
#include "diffuse/schedulers/factory.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  (void)fuzz::Scratch::get();  // silences warnings
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_error_or_success([&] {
    const io::json j = io::parse_json(text);
    std::unique_ptr<schedulers::Scheduler<float>> s;
    if (j.is_object() && j.contains("_class_name")) {
      s = schedulers::make_scheduler<float>(j);
    } else {
      const auto& names = schedulers::scheduler_names();
      const unsigned sum = std::accumulate(data, data + size, 0u);
      s = schedulers::make_scheduler<float>(names[sum % names.size()], j);
    }
    Generator gen(0);
    const Tensor<float> sample = Tensor<float>::full({1, 1, 2, 2}, 0.5f);
    const Tensor<float> noise = Tensor<float>::full({1, 1, 2, 2}, -0.25f);
    for (std::int64_t steps : {1, 7}) {
      s->set_timesteps(steps);
      Tensor<float> x = sample;
      for (double t : s->timesteps()) {
        const Tensor<float> in = s->scale_model_input(x, t);
        x = s->step(in, t, x, gen).prev_sample;  // the scaled sample as the "model output"
      }
    }
    (void)s->add_noise(sample, noise, std::vector<std::int64_t>{0});
    (void)schedulers::make_scheduler<float>(io::parse_json(io::to_pretty_json(s->to_json())));
  });
  return 0;
}
