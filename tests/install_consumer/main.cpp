// A user's program built against an installed pagedkv (find_package): the README's C++
// example, plus a check that every page is free again afterwards.
#include <pagedkv/manager/kv_cache_manager.h>
#include <pagedkv/scheduler/scheduler.h>

#include <cstdio>
#include <vector>

// The README's scheduler example; the "model" samples token 7 for every request that needs one.
static bool run_scheduler_example(const std::vector<int32_t>& prompt_token_ids) {
  auto run_model = [](const pagedkv::SchedulerOutput& out) {
    return std::vector<std::vector<int32_t>>(out.num_scheduled_tokens.size(), {7});
  };
  pagedkv::KVCacheManager manager(/*num_pages=*/256, /*page_size=*/16, /*max_model_len=*/2048);
  pagedkv::SchedulerConfig config;
  config.max_num_seqs = 32;
  config.max_num_batched_tokens = 512;
  config.max_model_len = 2048;
  pagedkv::Scheduler scheduler(config, manager);
  pagedkv::SamplingParams params;
  params.max_tokens = 64;
  scheduler.add_request(pagedkv::Request("r1", prompt_token_ids), params, /*eos_token_id=*/2);
  int outputs = 0;
  while (scheduler.has_unfinished_requests()) {
    pagedkv::SchedulerOutput out = scheduler.schedule();
    std::vector<std::vector<int32_t>> sampled = run_model(out);
    for (const pagedkv::RequestOutput& r : scheduler.update_from_output(out, sampled)) {
      outputs += static_cast<int>(r.new_token_ids.size());
    }
  }
  scheduler.verify();
  return outputs == 64 && manager.page_pool().get_num_free_pages() == 255;
}

int main() {
  std::vector<int32_t> prompt_token_ids(48);
  for (int i = 0; i < 48; ++i) prompt_token_ids[i] = i;

  pagedkv::KVCacheManager manager(/*num_pages=*/1024, /*page_size=*/16, /*max_model_len=*/4096);
  pagedkv::Request req("r1", prompt_token_ids);
  pagedkv::ComputedPages hit = manager.get_computed_pages(req);
  auto pages =
      manager.allocate_slots(req, {.num_new_tokens = req.num_tokens() - hit.num_computed_tokens,
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
                  manager.page_pool().get_num_free_pages() == 1023 &&
                  run_scheduler_example(prompt_token_ids);
  std::printf("pagedkv consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
