/// @file
/// The memory behind every tensor. Large blocks are cached when a tensor dies and handed to the next
/// tensor of the same size (or up to half that), so a training or sampling loop, which allocates the
/// same shapes at every step, stops asking the kernel for fresh pages: a fresh page costs a fault and
/// zero-filling, which took 40% of the wall time of batched sampling before this cache. The cache is
/// bounded: before a block is taken from the system, the oldest cached blocks are returned until
/// in use + cached + new stays within twice the most the program has ever had in use at once.
///
///   diffuse::release_cached_memory();         // give every cached block back now
///   diffuse::allocator_stats().cached_bytes;  // what the cache holds
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

namespace diffuse {

/// Counters of the tensor memory cache, as allocator_stats() returns them.
struct AllocatorStats {
  std::size_t in_use_bytes = 0;  ///< blocks held by live tensors (cached sizes only)
  std::size_t cached_bytes = 0;  ///< free blocks kept for reuse
  std::size_t peak_bytes = 0;    ///< most ever in use at once
  std::uint64_t hits = 0;        ///< allocations served from the cache
  std::uint64_t misses = 0;      ///< allocations that went to the system
};

namespace detail {

class CachingAllocator {
 public:
  /// Blocks below this size come from malloc directly: its own free lists already reuse them.
  static constexpr std::size_t kMinCached = std::size_t(64) << 10;
  static constexpr std::size_t kAlignment = 64;

  static CachingAllocator& instance() {
    static CachingAllocator* a = new CachingAllocator();  // never destroyed: tensors may outlive statics
    return *a;
  }

  /// An uninitialised, 64-byte aligned block of at least `bytes`; `bytes` is set to the block's size,
  /// which deallocate must be given back. nullptr when the system has no memory left.
  void* allocate(std::size_t& bytes) {
    // Rounded first: deallocate sees the rounded size, and must take the same path (65,500 bytes
    // came from the system but went back into the cache, and in_use_bytes wrapped below zero).
    bytes = round_up(bytes);
    if (bytes < kMinCached) return std::aligned_alloc(kAlignment, bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits, unless it is more than twice the size: a loop allocates the
    // same shapes at every step, so it finds its own blocks again; other sizes may share a block.
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first <= 2 * bytes) {
      void* p = it->second.ptr;
      bytes = it->first;
      stats_.cached_bytes -= bytes;
      free_.erase(it);
      ++stats_.hits;
      return track(p, bytes);
    }
    ++stats_.misses;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes + bytes);
    while (stats_.cached_bytes > 0 &&
           stats_.in_use_bytes + stats_.cached_bytes + bytes > 2 * stats_.peak_bytes)
      evict_oldest();
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (!p && stats_.cached_bytes > 0) {  // out of memory: give back everything cached and try again
      release_locked();
      p = std::aligned_alloc(kAlignment, bytes);
    }
    return p ? track(p, bytes) : nullptr;
  }

  /// Returns a block from allocate(bytes), with the size allocate set.
  void deallocate(void* p, std::size_t bytes) {
    if (!p) return;
    if (bytes < kMinCached) {
      std::free(p);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.in_use_bytes -= bytes;
    stats_.cached_bytes += bytes;
    free_.emplace(bytes, Block{p, ++clock_});
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct Block {
    void* ptr;
    std::uint64_t freed_at;
  };

  static std::size_t round_up(std::size_t bytes) {
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }

  void* track(void* p, std::size_t bytes) {
    stats_.in_use_bytes += bytes;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
    return p;
  }

  // The block freed longest ago goes first: it belongs to a phase the program has left.
  void evict_oldest() {
    auto oldest = free_.begin();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second.freed_at < oldest->second.freed_at) oldest = it;
    std::free(oldest->second.ptr);
    stats_.cached_bytes -= oldest->first;
    free_.erase(oldest);
  }

  void release_locked() {
    for (auto& [bytes, block] : free_) std::free(block.ptr);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  std::mutex mutex_;
  std::multimap<std::size_t, Block> free_;
  std::uint64_t clock_ = 0;
  AllocatorStats stats_;
};

}  // namespace detail

/// Gives every cached tensor block back to the system (tensors in use are not touched).
inline void release_cached_memory() { detail::CachingAllocator::instance().release(); }

/// A snapshot of the cache's counters (bytes in use, cached and at peak; hits and misses).
inline AllocatorStats allocator_stats() { return detail::CachingAllocator::instance().stats(); }

}  // namespace diffuse
