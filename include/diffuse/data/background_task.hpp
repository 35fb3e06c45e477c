/// @file
/// A value computed on a thread of its own: what std::async(std::launch::async, f) gives the
/// data loader's prefetch, with less to compile (no shared state, no deferred launch policy).
#pragma once
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

namespace diffuse::data::detail {

/// Runs f() on a new std::thread from construction on. get() waits for it and returns its
/// result or rethrows its exception; the destructor waits too, as a std::future from
/// std::async does. Move-only.
template <class R>
class BackgroundTask {
 public:
  template <class F>
  explicit BackgroundTask(F f) : slot_(std::make_unique<Slot>()) {
    // The slot lives on the heap so that the running thread keeps its address when the task moves.
    slot_->thread = std::thread([s = slot_.get(), f = std::move(f)]() mutable {
      try {
        s->value.emplace(f());
      } catch (...) {
        s->error = std::current_exception();
      }
    });
  }
  BackgroundTask(BackgroundTask&&) noexcept = default;
  BackgroundTask& operator=(BackgroundTask&& other) noexcept {
    wait();
    slot_ = std::move(other.slot_);
    return *this;
  }
  ~BackgroundTask() { wait(); }

  /// Blocks until f has returned or thrown.
  void wait() noexcept {
    if (slot_ && slot_->thread.joinable()) slot_->thread.join();
  }
  /// f's result (moved out: call once), or f's exception rethrown.
  R get() {
    wait();
    if (slot_->error) std::rethrow_exception(slot_->error);
    return std::move(*slot_->value);
  }

 private:
  struct Slot {
    std::thread thread;
    std::optional<R> value;
    std::exception_ptr error;
  };
  std::unique_ptr<Slot> slot_;
};

}  // namespace diffuse::data::detail
