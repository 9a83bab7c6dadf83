// pagedkv/scheduler/scheduler.h - vLLM v1's synchronous scheduler over one KVCacheManager:
// each step decides which requests compute how many tokens, with which pages (rules 34-46).
//
// Example (one engine loop):
//   KVCacheManager manager(/*num_pages=*/256, /*page_size=*/16, /*max_model_len=*/2048);
//   SchedulerConfig config;
//   config.max_num_seqs = 32;
//   config.max_num_batched_tokens = 512;
//   config.max_model_len = 2048;
//   Scheduler scheduler(config, manager);
//   scheduler.add_request(Request("r1", prompt), params, /*eos_token_id=*/2);
//   while (scheduler.has_unfinished_requests()) {
//     SchedulerOutput out = scheduler.schedule();
//     std::vector<std::vector<TokenId>> sampled = run_model(out);  // [i]: request i of
//                                                                   // out.num_scheduled_tokens
//     for (const RequestOutput& r : scheduler.update_from_output(out, sampled)) { ... }
//   }
//
// One step, schedule() (phases in this order, each a private method):
//   1. running pass (rules 34-36): `running` in order while budget > 0; each request gets
//      n = min(num_tokens - computed, threshold if set, budget) and allocate_slots(n); on
//      failure a victim is preempted (FCFS: the last running request; PRIORITY: the largest
//      (priority, arrival_time), the first such in `running` on a tie) until the allocation
//      succeeds or the request itself is the victim, which ends the pass. A victim already
//      scheduled in this step gives its tokens back and leaves the step.
//   2. admission (rules 37-40), only if nothing was preempted: the head of `waiting` while
//      budget > 0 and len(running) < max_num_seqs; its prefix hit, its chunk, the checks of
//      rule 39 (the whole sequence fits - when reserve_full_prompt -, the chunk fits) on
//      KVCacheManager::plan_allocation; the first head that fails ends admission. Waiting
//      requests never preempt.
//   3. commit (rule 41): the output lists the scheduled requests (running pass first), then
//      every scheduled request's computed tokens advance by its n.
// update_from_output() (rules 43-44): in output order, each scheduled request whose computed
// tokens reached num_tokens takes its sampled token and makes the stop check
// (Sequence::append_output_token); a finished request is freed at once and leaves `running`
// (others keep their order); it is reported in the next output's finished_req_ids.
//
// Invariants (verify()):
//   - every live request is in exactly one of `running` (status kRunning) and `waiting`
//     (kWaiting or kPreempted); len(running) <= max_num_seqs;
//   - the manager holds exactly the running requests, and each one's pages per group are the
//     pages the outputs announced (a sliding-window group may since have swapped some for the
//     null page); the manager's and each sequence's own invariants hold;
//   - prefix-cache statistics count admitted requests only (rule 46).
//
// Errors: every public call checks everything before it changes anything (strong guarantee).
//
// Choices where the rules and vLLM leave room:
//   - max_num_tokens() = min(max_model_len, the most tokens one request's pages can cover in
//     the whole pool + 1). A prompt longer than that pool bound can never run: add_request
//     refuses it with CapacityError (rule 29; the bound is exactly the manager's rule-29
//     check for a whole prompt). A request reaching max_num_tokens finishes with "length",
//     as at max_model_len (rule 43), instead of waiting forever for a page that does not
//     exist. vLLM's engine refuses a pool smaller than one max_model_len request instead.
//   - abort_request of an unknown or finished id is a no-op returning false (vLLM ignores it).
//   - a request aborted between schedule() and update_from_output() is skipped there.
//   - schedule() refuses to run while the previous output, if it scheduled anything, has not
//     been passed to update_from_output (StateError): this is the synchronous scheduler.
//   - sampled tokens given for a request that produces none (a partial prefill chunk) are
//     ignored, as rule 43 says; a request that produces one must be given exactly one.
//
// The scheduler must be its manager's only client (for requests), and the manager must outlive
// it. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/manager/prefix_cache_stats.h"
#include "pagedkv/scheduler/sampling_params.h"
#include "pagedkv/scheduler/scheduler_config.h"
#include "pagedkv/scheduler/scheduler_output.h"
#include "pagedkv/scheduler/sequence.h"
#include "pagedkv/scheduler/waiting_queue.h"

namespace pagedkv {

struct SchedulerStats {
  int64_t num_steps = 0;        // schedule() calls
  int64_t num_preemptions = 0;  // over all steps
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;  // the manager's usage() when stats() was called
  // Prefix-cache lookups of ADMITTED requests (rule 46); resumed ones in resumed_*.
  PrefixCacheStats prefix_cache;
};

class Scheduler {
 public:
  // Validates `config` (InvalidArgument naming the field); InvalidArgument unless
  // config.max_model_len equals the manager's; StateError if the manager holds requests.
  Scheduler(SchedulerConfig config, KVCacheManager& manager);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const SchedulerConfig& config() const { return config_; }
  // The most tokens a request may reach (see "Choices" above).
  int32_t max_num_tokens() const { return max_num_tokens_; }

  // Queues a new request (status kWaiting). arrival_time defaults to the number of
  // add_request calls that succeeded before this one (0, 1, 2, ...). Throws, changing nothing:
  //   InvalidArgument  an id that is live (waiting, running or preempted); a prompt of length
  //                    >= max_model_len (rule 45; an empty one cannot be built); a request
  //                    hashed with another algorithm than the manager's; a request that is not
  //                    fresh; bad sampling params, a negative EOS id, a non-finite arrival time;
  //   StateError       the manager already holds a request of that id;
  //   CapacityError    the prompt needs more pages than the pool has usable (rule 29).
  void add_request(Request request, SamplingParams params,
                   std::optional<TokenId> eos_token_id = std::nullopt, int32_t priority = 0,
                   std::optional<double> arrival_time = std::nullopt);
  // Aborts a live request in any state: its pages are freed at once, it leaves its queue
  // (others keep their order) and is reported in the next output's finished_req_ids
  // (rule 44). Returns false, changing nothing, for an unknown or finished id.
  bool abort_request(const std::string& request_id);

  // One step (phases above). StateError (nothing changed) while the previous output that
  // scheduled tokens awaits update_from_output.
  SchedulerOutput schedule();
  // Same, reusing `out`'s buffers.
  void schedule(SchedulerOutput& out);

  // Applies the model step's sampled tokens to the output of the latest schedule():
  // sampled_token_ids[i] belongs to out.num_scheduled_tokens[i]. Returns one RequestOutput per
  // request that produced a token, in output order. Throws, changing nothing: StateError for
  // an output that is not the latest one (or was applied already); InvalidArgument when
  // sampled_token_ids has another size than the output, or a request that produces a token
  // (computed >= num_tokens) is given none, several, or a negative one.
  std::vector<RequestOutput> update_from_output(
      const SchedulerOutput& out, std::span<const std::vector<TokenId>> sampled_token_ids);
  // Same, with the tokens per request id (ids not in the output: InvalidArgument; ids missing:
  // no tokens).
  std::vector<RequestOutput> update_from_output(
      const SchedulerOutput& out,
      const std::unordered_map<std::string, std::vector<TokenId>>& sampled_token_ids);
  // Same as the first, writing into `results` (buffers reused).
  void update_from_output(const SchedulerOutput& out,
                          std::span<const std::vector<TokenId>> sampled_token_ids,
                          std::vector<RequestOutput>& results);

  int32_t num_waiting() const { return waiting_.size(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  bool has_unfinished_requests() const { return !requests_.empty(); }
  // A live request, or nullptr (unknown or finished). Valid until the next mutating call.
  const Sequence* find_sequence(const std::string& request_id) const;
  // The live requests in queue order: `running` in admission order, `waiting` head first.
  std::vector<const Sequence*> running() const;
  std::vector<const Sequence*> waiting() const { return waiting_.in_order(); }

  SchedulerStats stats() const;
  const PrefixCacheStats& prefix_cache_stats() const { return prefix_cache_stats_; }

  // Walks every invariant above; throws InternalError naming the first broken.
  void verify() const;

 private:
  enum class EntryKind : uint8_t { kRunning, kNew, kResumed };
  // One request scheduled in the step being built. Entries are reused across steps (their
  // page buffers too); the first num_entries_ are this step's.
  struct StepEntry {
    Sequence* seq = nullptr;
    int32_t num_tokens = 0;
    EntryKind kind = EntryKind::kRunning;
    bool has_new_pages = false;  // kRunning: the step added pages, listed in new_pages
    GroupPages new_pages;        // meaningful only when has_new_pages
  };

  // ---- schedule() phases, in order ----
  void begin_step();
  void schedule_running(int32_t& budget);  // rules 34-36
  void schedule_waiting(int32_t& budget);  // rules 37-40
  void commit_step(SchedulerOutput& out);  // rule 41
  // Running pass helpers.
  bool preempt_until_allocated(Sequence& seq, const AllocationRequest& alloc, size_t& index,
                               int32_t& budget);
  size_t victim_index() const;
  int32_t unschedule(const Sequence& seq);  // the tokens it had in this step (0 if none)
  void preempt(Sequence& victim);           // rule 36
  // Admission helper: the checks of rule 39 and, if they pass, the chunk's allocation.
  bool allocate_admission(Sequence& seq, int32_t num_tokens);
  StepEntry& add_entry(Sequence& seq, int32_t num_tokens, EntryKind kind);
  // Commit helpers.
  static void resize_cached(CachedRequestData& cached, size_t size);
  static void write_new_request(const Sequence& seq, NewRequestData& d);
  void write_cached_request(StepEntry& e, CachedRequestData& cached, size_t index);

  // ---- update_from_output() phases ----
  void check_sampled(const SchedulerOutput& out,
                     std::span<const std::vector<TokenId>> sampled_token_ids) const;
  void finish(Sequence& seq);  // rule 44: free, report, retire (not `running`)
  void remove_finished_from_running();

  void check_new_request(const Request& request) const;
  Sequence* find_live(const std::string& request_id) const;

  SchedulerConfig config_;
  KVCacheManager* manager_;
  int32_t tokens_in_pool_ = 0;  // the most tokens one request's pages cover in the pool
  int32_t max_num_tokens_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Sequence>> requests_;  // live requests
  std::vector<Sequence*> running_;                                       // admission order
  WaitingQueue waiting_;
  // Finished sequences kept alive while the pending output may still name them.
  std::vector<std::unique_ptr<Sequence>> retired_;
  std::vector<std::string> finished_ids_;  // since the last schedule()
  int64_t num_added_ = 0;                  // default arrival times

  // The step being built / awaiting update_from_output.
  int64_t step_ = 0;
  bool awaiting_update_ = false;
  std::vector<StepEntry> entries_;
  int32_t num_entries_ = 0;
  std::vector<const Sequence*> step_preempted_;
  // Reused buffers.
  ComputedPages hit_;
  AllocationPlan whole_plan_, chunk_plan_;
  GroupPages new_pages_;
  std::vector<GroupPages> spare_pages_;  // buffers of output page lists that became nullopt

  int64_t num_preemptions_ = 0;
  PrefixCacheStats prefix_cache_stats_;
};

}  // namespace pagedkv
