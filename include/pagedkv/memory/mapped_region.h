// pagedkv/memory/mapped_region.h - an owning, move-only region of anonymous host memory, mapped
// lazily: the OS hands out zero-filled pages on first touch, so a region sized to most of the
// machine costs nothing until written (the lazy calloc a KV cache needs; aligned_alloc + memset
// would touch every byte up front). Large regions are advised to use transparent huge pages.
//
// Example:
//   pagedkv::MappedRegion region(size_t{8} << 30);      // 8 GiB, nothing touched yet
//   auto* keys = static_cast<float*>(region.data());     // zero-filled, 2 MiB aligned
//   region.size();                                       // 8 GiB
//   pagedkv::MappedRegion owner = std::move(region);     // region is now empty
//
// Alignment: regions of at least kHugePageMinBytes start on a 2 MiB boundary and are advised
// MADV_HUGEPAGE (fewer TLB misses for scattered writes and page reads; only a hint: a no-op
// where transparent huge pages are off). Smaller regions are OS-page aligned.
// Invariants: data() != nullptr exactly when size() > 0; the mapping is released once, by the
// destructor or a move assignment; a moved-from region is empty.
// Errors: a zero size is InvalidArgument; a mapping the OS refuses is CapacityError naming the
// size and the OS error. Not thread-safe to move while another thread uses it.
#pragma once

#include <cstddef>

namespace pagedkv {

class MappedRegion {
 public:
  static constexpr size_t kHugePageBytes = size_t{2} << 20;
  static constexpr size_t kHugePageMinBytes = 2 * kHugePageBytes;

  MappedRegion() = default;  // empty
  explicit MappedRegion(size_t bytes);
  ~MappedRegion();
  MappedRegion(MappedRegion&& other) noexcept;
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  // True when the region is 2 MiB aligned and advised to use huge pages.
  bool huge_pages() const { return size_ >= kHugePageMinBytes; }

 private:
  void release() noexcept;

  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pagedkv
