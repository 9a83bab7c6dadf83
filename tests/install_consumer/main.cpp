// Builds against an installed pagedkv: allocate, cache and free pages, then check conservation.
#include <pagedkv/page_pool.h>
#include <pagedkv/request.h>

#include <cstdio>
#include <vector>

int main() {
  pagedkv::PagePool pool(11, /*enable_caching=*/true);
  std::vector<pagedkv::TokenId> prompt(48);
  for (int i = 0; i < 48; ++i) prompt[i] = i;
  pagedkv::Request req("consumer", prompt);
  std::vector<pagedkv::PageId> pages = pool.get_new_pages(3);
  pool.cache_full_pages(req, pages, 0, 3, 16, 0);
  pool.free_pages(std::vector<pagedkv::PageId>(pages.rbegin(), pages.rend()));
  pool.verify();
  const bool ok = pool.get_num_free_pages() == 10 && pool.get_cached_page(req.page_hashes(16)[0], 0);
  std::printf("pagedkv consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
