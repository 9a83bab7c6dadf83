#include "pagedkv/compat/hbm_page_manager.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {
int32_t checked_page_size(int32_t page_size) {
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  return page_size;
}
}  // namespace

HBMPageManager::HBMPageManager(int32_t num_pages, int32_t page_size)
    : page_size_(checked_page_size(page_size)), pool_(num_pages, /*enable_caching=*/false) {}

std::vector<PageId> HBMPageManager::alloc_prefill_hbm_pages(int64_t prompt_len) {
  if (prompt_len <= 0) return {};
  return alloc_hbm_pages((prompt_len - 1) / page_size_ + 1);  // cdiv without overflow
}

std::vector<PageId> HBMPageManager::alloc_hbm_pages(int64_t n) {
  // The seed reports "not enough pages" with an empty list rather than an error.
  if (n <= 0 || n > pool_.get_num_free_pages()) return {};
  return pool_.get_new_pages(static_cast<int32_t>(n));
}

void HBMPageManager::free_hbm_pages(std::span<const PageId> pages) {
  // PagePool::free_pages already skips the null page, which is the dummy page here.
  pool_.free_pages(pages);
}

}  // namespace pagedkv
