/// @file
/// Whether operations record the autograd graph (per thread), and the guard that turns it off.
#pragma once

namespace diffuse {

namespace detail {
inline bool& grad_mode_flag() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// Whether operations on this thread record the graph (like torch.is_grad_enabled()).
inline bool is_grad_enabled() { return detail::grad_mode_flag(); }

/// While alive, operations build no graph (like torch.no_grad()).
class NoGradGuard {
 public:
  /// Turns recording off on this thread; the destructor restores the previous mode.
  NoGradGuard() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
  ~NoGradGuard() { detail::grad_mode_flag() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace diffuse
