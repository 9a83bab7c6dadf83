// pagedkv/replay/default_workload.h - the built-in workload `pagedkv replay` runs when no trace is
// given: a deterministic mix of the two prefix-sharing patterns that matter for a prefix cache.
//
//   1. Shared system prompts: single-turn requests = one of a few long system prompts
//      (popularity ~ 1/rank) + a private user message.
//   2. Multi-turn chats: turn k's prompt = turn k-1's prompt + its answer + a new user message,
//      so each turn extends the previous one (most chats also start with a system prompt).
//
// Example:
//   Trace t = default_workload();                 // ~3,500 requests, block size 16
//   Trace small = default_workload({.num_single_requests = 100, .num_chats = 10});
//
// Invariants: the same options give the same trace on every machine (own integer generator,
// no std distributions); the result passes Trace::validate(); system prompts are whole blocks
// (so they are shared at any page size dividing the block size); every private segment gets
// fresh block keys.
#pragma once

#include <cstdint>

#include "pagedkv/replay/trace.h"

namespace pagedkv {

struct DefaultWorkloadOptions {
  uint64_t seed = 20250101;
  int32_t block_size = 16;
  int32_t num_system_prompts = 6;
  int32_t min_system_prompt_blocks = 32;   // 512 tokens at block size 16
  int32_t max_system_prompt_blocks = 256;  // 4096 tokens
  int32_t num_single_requests = 2000;
  int32_t min_user_tokens = 32;
  int32_t max_user_tokens = 1024;
  int32_t num_chats = 250;
  int32_t min_turns = 2;
  int32_t max_turns = 10;
  int32_t min_answer_tokens = 32;
  int32_t max_answer_tokens = 768;
  double chat_system_prompt_fraction = 0.8;  // chats that start with a shared system prompt
  double arrival_rate = 4.0;                 // new singles / chats per second (Poisson)
  double min_think_seconds = 5.0;            // between a chat's turns
  double max_think_seconds = 60.0;

  // Throws InvalidArgument naming the first bad field.
  void validate() const;
};

// Throws InvalidArgument when the options are invalid.
Trace default_workload(const DefaultWorkloadOptions& options = {});

}  // namespace pagedkv
