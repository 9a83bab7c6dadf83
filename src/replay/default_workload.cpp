#include "pagedkv/replay/default_workload.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// splitmix64: a tiny generator whose output is fixed by the seed on every platform (std
// distributions are implementation-defined, so they are not used).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi].
  int32_t uniform(int32_t lo, int32_t hi) {
    const auto span = static_cast<unsigned __int128>(static_cast<uint64_t>(hi - lo) + 1);
    return lo + static_cast<int32_t>((span * next()) >> 64);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform_real(double lo, double hi) { return lo + (hi - lo) * unit(); }
  double exponential(double rate) { return -std::log1p(-unit()) / rate; }

 private:
  uint64_t state_;
};

// A token stream made of blocks; appending fills the partial last block (same key) first.
struct Stream {
  int32_t length = 0;
  std::vector<uint64_t> keys;

  void append(int32_t tokens, int32_t block_size, uint64_t& next_key) {
    length += tokens;
    while (keys.size() < static_cast<size_t>(cdiv(length, block_size))) keys.push_back(next_key++);
  }
  TraceRequest snapshot(double t) const {
    return TraceRequest{
        .timestamp = t, .input_length = length, .output_length = 0, .block_keys = keys};
  }
};

// Index drawn with probability proportional to 1 / (rank + 1).
int32_t zipf_pick(Rng& rng, const std::vector<double>& cumulative) {
  const double u = rng.unit() * cumulative.back();
  const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  return static_cast<int32_t>(
      std::min<ptrdiff_t>(it - cumulative.begin(), static_cast<ptrdiff_t>(cumulative.size()) - 1));
}

}  // namespace

void DefaultWorkloadOptions::validate() const {
  PAGEDKV_CHECK_ARG(block_size > 0, "block_size must be > 0, got {}", block_size);
  PAGEDKV_CHECK_ARG(num_system_prompts > 0, "num_system_prompts must be > 0, got {}",
                    num_system_prompts);
  PAGEDKV_CHECK_ARG(
      min_system_prompt_blocks > 0 && min_system_prompt_blocks <= max_system_prompt_blocks,
      "system prompt blocks must satisfy 0 < min <= max, got [{}, {}]", min_system_prompt_blocks,
      max_system_prompt_blocks);
  PAGEDKV_CHECK_ARG(num_single_requests >= 0, "num_single_requests must be >= 0, got {}",
                    num_single_requests);
  PAGEDKV_CHECK_ARG(min_user_tokens > 0 && min_user_tokens <= max_user_tokens,
                    "user tokens must satisfy 0 < min <= max, got [{}, {}]", min_user_tokens,
                    max_user_tokens);
  PAGEDKV_CHECK_ARG(num_chats >= 0, "num_chats must be >= 0, got {}", num_chats);
  PAGEDKV_CHECK_ARG(min_turns > 0 && min_turns <= max_turns,
                    "turns must satisfy 0 < min <= max, got [{}, {}]", min_turns, max_turns);
  PAGEDKV_CHECK_ARG(min_answer_tokens > 0 && min_answer_tokens <= max_answer_tokens,
                    "answer tokens must satisfy 0 < min <= max, got [{}, {}]", min_answer_tokens,
                    max_answer_tokens);
  PAGEDKV_CHECK_ARG(chat_system_prompt_fraction >= 0.0 && chat_system_prompt_fraction <= 1.0,
                    "chat_system_prompt_fraction must be in [0, 1], got {}",
                    chat_system_prompt_fraction);
  PAGEDKV_CHECK_ARG(arrival_rate > 0.0 && std::isfinite(arrival_rate),
                    "arrival_rate must be finite and > 0, got {}", arrival_rate);
  PAGEDKV_CHECK_ARG(min_think_seconds >= 0.0 && min_think_seconds <= max_think_seconds &&
                        std::isfinite(max_think_seconds),
                    "think seconds must satisfy 0 <= min <= max, got [{}, {}]", min_think_seconds,
                    max_think_seconds);
  // The longest possible chat turn must fit an int32 token count.
  const double longest = static_cast<double>(max_system_prompt_blocks) * block_size +
                         static_cast<double>(max_turns) * (max_user_tokens + max_answer_tokens);
  PAGEDKV_CHECK_ARG(longest < 2.0e9, "the longest prompt ({} tokens) does not fit int32", longest);
}

Trace default_workload(const DefaultWorkloadOptions& o) {
  o.validate();
  Rng rng(o.seed);
  uint64_t next_key = 1;
  const int32_t bs = o.block_size;

  std::vector<Stream> system_prompts(static_cast<size_t>(o.num_system_prompts));
  std::vector<double> cumulative;
  double total_weight = 0.0;
  for (int32_t i = 0; i < o.num_system_prompts; ++i) {
    const int32_t blocks = rng.uniform(o.min_system_prompt_blocks, o.max_system_prompt_blocks);
    system_prompts[static_cast<size_t>(i)].append(blocks * bs, bs, next_key);
    total_weight += 1.0 / (i + 1);
    cumulative.push_back(total_weight);
  }

  Trace t;
  t.block_size = bs;
  t.source = "default workload";
  int32_t singles_left = o.num_single_requests;
  int32_t chats_left = o.num_chats;
  double now = 0.0;
  while (singles_left + chats_left > 0) {
    now += rng.exponential(o.arrival_rate);
    // Exact counts: a chat comes next with probability chats_left / sessions_left.
    const bool chat = rng.uniform(1, singles_left + chats_left) <= chats_left;
    if (!chat) {
      --singles_left;
      Stream s = system_prompts[static_cast<size_t>(zipf_pick(rng, cumulative))];
      s.append(rng.uniform(o.min_user_tokens, o.max_user_tokens), bs, next_key);
      TraceRequest r = s.snapshot(now);
      r.output_length = rng.uniform(o.min_answer_tokens, o.max_answer_tokens);
      t.requests.push_back(std::move(r));
      continue;
    }
    --chats_left;
    Stream s;
    if (rng.unit() < o.chat_system_prompt_fraction) {
      s = system_prompts[static_cast<size_t>(zipf_pick(rng, cumulative))];
    }
    s.append(rng.uniform(o.min_user_tokens, o.max_user_tokens), bs, next_key);
    const int32_t turns = rng.uniform(o.min_turns, o.max_turns);
    double turn_time = now;
    for (int32_t k = 0; k < turns; ++k) {
      const int32_t answer = rng.uniform(o.min_answer_tokens, o.max_answer_tokens);
      TraceRequest r = s.snapshot(turn_time);
      r.output_length = answer;
      t.requests.push_back(std::move(r));
      s.append(answer, bs, next_key);
      s.append(rng.uniform(o.min_user_tokens, o.max_user_tokens), bs, next_key);
      turn_time += rng.uniform_real(o.min_think_seconds, o.max_think_seconds);
    }
  }
  std::stable_sort(
      t.requests.begin(), t.requests.end(),
      [](const TraceRequest& a, const TraceRequest& b) { return a.timestamp < b.timestamp; });
  t.validate();
  return t;
}

}  // namespace pagedkv
