#include "pagedkv/memory/mapped_region.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// Maps `span` bytes of anonymous memory; CapacityError naming `bytes` (what the caller asked
// for) on failure.
void* map_anonymous(size_t span, size_t bytes) {
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  PAGEDKV_CHECK_CAPACITY(p != MAP_FAILED, "cannot map a region of {} bytes: {}", bytes,
                         std::strerror(errno));
  return p;
}

// Maps `bytes` starting on a huge-page boundary: over-map by one huge page, then unmap the
// unaligned head and the tail.
void* map_huge_aligned(size_t bytes) {
  constexpr size_t kHuge = MappedRegion::kHugePageBytes;
  PAGEDKV_CHECK_CAPACITY(bytes <= SIZE_MAX - kHuge, "cannot map a region of {} bytes", bytes);
  const size_t span = bytes + kHuge;
  void* p = map_anonymous(span, bytes);
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
  if (aligned > start) munmap(p, aligned - start);
  const uintptr_t end = start + span, want_end = aligned + bytes;
  if (end > want_end) munmap(reinterpret_cast<void*>(want_end), end - want_end);
  p = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
  return p;
}

}  // namespace

MappedRegion::MappedRegion(size_t bytes) {
  PAGEDKV_CHECK_ARG(bytes > 0, "a mapped region needs a size > 0, got {}", bytes);
  data_ = bytes >= kHugePageMinBytes ? map_huge_aligned(bytes) : map_anonymous(bytes, bytes);
  size_ = bytes;
}

MappedRegion::~MappedRegion() { release(); }

MappedRegion::MappedRegion(MappedRegion&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedRegion::release() noexcept {
  if (data_ != nullptr) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace pagedkv
