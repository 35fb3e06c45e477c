/// @file
/// Warnings: something a user should hear about that does not stop the work (a config key that is
/// ignored, for example). They go to stderr, prefixed "diffuse: warning: ", unless a program
/// installs its own handler (a GUI, a logger, or a test that collects them).
#pragma once
#include <atomic>
#include <cstdio>
#include <string>

namespace diffuse {

/// Receives each warning's message; see set_warning_handler().
using WarningHandler = void (*)(const std::string& message);

namespace detail {
inline void warn_to_stderr(const std::string& message) {
  std::fprintf(stderr, "diffuse: warning: %s\n", message.c_str());
}
inline std::atomic<WarningHandler>& warning_handler_slot() {
  static std::atomic<WarningHandler> handler{&warn_to_stderr};
  return handler;
}
}  // namespace detail

/// Installs a handler for every later warning (nullptr restores stderr); returns the previous one.
inline WarningHandler set_warning_handler(WarningHandler handler) {
  return detail::warning_handler_slot().exchange(handler ? handler : &detail::warn_to_stderr);
}

/// Reports a warning through the installed handler (stderr by default).
inline void warn(const std::string& message) { detail::warning_handler_slot().load()(message); }

}  // namespace diffuse
