// A small command-line parser shared by the tools (train_unconditional, sample): flags are
// declared with their default and help text, so `--help` lists every flag with its default, and
// a wrong flag or value is a one-line error naming it (exit code 2).
//
//   cli::Parser p("sample", "Samples images from a diffusers pipeline folder.");
//   std::string dir;  std::int64_t steps = 20;
//   p.add("--pipeline", dir, "the pipeline folder (model_index.json, unet/, scheduler/)");
//   p.add("--num_inference_steps", steps, "denoising steps");
//   p.parse(argc, argv);            // exits 0 after --help, 2 on a bad flag
#pragma once
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

// A wrong flag or value: main() prints "<tool>: <message>" and exits with 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Parser {
 public:
  Parser(std::string tool, std::string about) : tool_(std::move(tool)), about_(std::move(about)) {}

  void add(const std::string& name, std::string& v, const std::string& help) {
    add_flag(name, quote(v), help, [&v](const std::string& s) { v = s; });
  }
  void add(const std::string& name, std::filesystem::path& v, const std::string& help) {
    add_flag(name, quote(v.string()), help, [&v](const std::string& s) { v = s; });
  }
  void add(const std::string& name, std::int64_t& v, const std::string& help) {
    add_flag(name, std::to_string(v), help, [&v, name](const std::string& s) { v = to_int(name, s); });
  }
  // Optional values: "none" unsets them.
  void add(const std::string& name, std::optional<std::int64_t>& v, const std::string& help) {
    add_flag(name, v ? std::to_string(*v) : "none", help, [&v, name](const std::string& s) {
      if (s == "none")
        v.reset();
      else
        v = to_int(name, s);
    });
  }
  void add(const std::string& name, double& v, const std::string& help) {
    add_flag(name, format(v), help, [&v, name](const std::string& s) { v = to_double(name, s); });
  }
  void add(const std::string& name, std::optional<double>& v, const std::string& help) {
    add_flag(name, v ? format(*v) : "none", help, [&v, name](const std::string& s) {
      if (s == "none")
        v.reset();
      else
        v = to_double(name, s);
    });
  }
  // A switch: `--flag` alone sets it; `--flag=false` / `--flag=true` are accepted too.
  void add(const std::string& name, bool& v, const std::string& help) {
    flags_.push_back(
        {name, v ? "on" : "off", help, [&v, name](const std::string& s) { v = to_bool(name, s); }, true});
  }

  // Reads argv; `--flag value` and `--flag=value` both work. Prints help and exits 0 on --help.
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::fputs(help().c_str(), stdout);
        std::exit(0);
      }
      std::optional<std::string> value;
      if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
      const Flag* f = find(arg);
      if (!f) throw UsageError("unknown argument '" + arg + "' (see --help)");
      if (!value) {
        if (f->is_switch)
          value = "true";
        else if (i + 1 >= argc)
          throw UsageError(arg + " needs a value");
        else
          value = argv[++i];
      }
      f->set(*value);
    }
  }

  std::string help() const {
    std::ostringstream s;
    s << "usage: " << tool_ << " [options]\n\n" << about_ << "\n\noptions:\n";
    for (const Flag& f : flags_) {
      s << "  " << f.name << (f.is_switch ? "" : " VALUE") << "\n      " << f.help
        << " (default: " << f.fallback << ")\n";
    }
    s << "  --help\n      this text\n";
    return s.str();
  }

  static std::int64_t to_int(const std::string& name, const std::string& s) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE)
      throw UsageError(name + " takes a whole number, got '" + s + "'");
    return v;
  }
  static double to_double(const std::string& name, const std::string& s) {
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
      throw UsageError(name + " takes a finite number, got '" + s + "'");
    return v;
  }
  static bool to_bool(const std::string& name, const std::string& s) {
    if (s == "true" || s == "1" || s == "yes") return true;
    if (s == "false" || s == "0" || s == "no") return false;
    throw UsageError(name + " takes true or false, got '" + s + "'");
  }

 private:
  struct Flag {
    std::string name, fallback, help;
    std::function<void(const std::string&)> set;
    bool is_switch = false;
  };
  void add_flag(const std::string& name, std::string fallback, const std::string& help,
                std::function<void(const std::string&)> set) {
    flags_.push_back({name, std::move(fallback), help, std::move(set), false});
  }
  const Flag* find(const std::string& name) const {
    for (const Flag& f : flags_)
      if (f.name == name) return &f;
    return nullptr;
  }
  static std::string quote(const std::string& s) { return s.empty() ? "none" : s; }
  static std::string format(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  }

  std::string tool_, about_;
  std::vector<Flag> flags_;
};

// Checks that `value` is one of `accepted`, else a UsageError naming the flag and the choices.
inline void check_choice(const std::string& flag, const std::string& value,
                         const std::vector<std::string>& accepted) {
  for (const auto& a : accepted)
    if (a == value) return;
  std::string list;
  for (const auto& a : accepted) list += (list.empty() ? "" : ", ") + a;
  throw UsageError(flag + ": unknown value '" + value + "' (accepted: " + list + ")");
}

}  // namespace cli
