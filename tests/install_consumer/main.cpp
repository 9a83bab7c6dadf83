// A user's program built against an installed pagedkv (find_package): the README's C++
// example, plus a check that every page is free again afterwards.
#include <pagedkv/manager/kv_cache_manager.h>

#include <cstdio>
#include <vector>

int main() {
  std::vector<int32_t> prompt_token_ids(48);
  for (int i = 0; i < 48; ++i) prompt_token_ids[i] = i;

  pagedkv::KVCacheManager manager(/*num_pages=*/1024, /*page_size=*/16, /*max_model_len=*/4096);
  pagedkv::Request req("r1", prompt_token_ids);
  pagedkv::ComputedPages hit = manager.get_computed_pages(req);
  auto pages = manager.allocate_slots(
      req, {.num_new_tokens = req.num_tokens() - hit.num_computed_tokens,
            .num_new_computed_tokens = hit.num_computed_tokens,
            .new_computed_pages = &hit.pages});
  if (!pages) return 1;
  req.set_num_computed_tokens(req.num_tokens());
  manager.free(req);

  // A second identical prompt hits the first two pages (the last token is recomputed).
  pagedkv::Request again("r2", prompt_token_ids);
  const int32_t hit_tokens = manager.get_computed_pages(again).num_computed_tokens;
  manager.verify();
  const bool ok = (*pages)[0].size() == 3 && hit_tokens == 32 &&
                  manager.page_pool().get_num_free_pages() == 1023;
  std::printf("pagedkv consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
