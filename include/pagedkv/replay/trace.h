// pagedkv/replay/trace.h - request traces for cache-only replay: loading the public trace formats
// and synthesising each request's prompt tokens from its per-block hash ids.
//
// Real traces carry no token ids, only one "hash id" per block of the prompt (identical ids
// mean identical content). A Trace keeps, per request, one 64-bit *block key* per block; the
// tokens of a block are a pure function of its key and the position inside the block, so
// identical keys give identical tokens and different keys give different tokens with
// overwhelming probability. A prompt's last block may be partial: it holds the first
// `input_length % block_size` tokens of that key's block, so a partial block is a prefix of
// the full block with the same key.
//
// Formats (as published by the Mooncake and kv-cache-tester projects; docs/replay.md):
//   mooncake         JSON lines {"timestamp": ms, "input_length", "output_length", "hash_ids"}
//                    with one id per 512-token block, cdiv(input_length, 512) ids (last block
//                    usually partial).
//   kv-cache-tester  one JSON object per session (a file may also hold a JSON array of them):
//                    {"block_size": 64, "hash_id_scope": "local", "requests": [{"t": s, "in",
//                    "out", "hash_ids"}]}, ids for the in / block_size FULL blocks only; the
//                    in % block_size tail belongs to that request alone, so the loader gives it
//                    a fresh key no other request shares.
// Hash ids are scoped by file: the same id in two files is two different blocks (both formats;
// a kv-cache-tester file declaring "hash_id_scope": "global" shares its ids across files).
//
// Example:
//   Trace t = load_trace("conversation_trace.jsonl", TraceFormat::kMooncake);
//   std::vector<TokenId> prompt;
//   synthesize_prompt(t.requests[0], t.block_size, prompt);   // input_length tokens
//
// Invariants (Trace::validate):
//   - block_size > 0; every request has input_length > 0, output_length >= 0, a finite
//     timestamp >= 0 (seconds) and exactly cdiv(input_length, block_size) block keys;
//   - requests are ordered by timestamp; ties keep file order (stable), files in load order.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

enum class TraceFormat : uint8_t { kMooncake, kKvCacheTester };

std::string_view trace_format_name(TraceFormat format);  // "mooncake" / "kv-cache-tester"
TraceFormat parse_trace_format(std::string_view name);   // throws InvalidArgument
// A directory or a ".json" file -> kv-cache-tester; anything else (".jsonl"...) -> mooncake.
TraceFormat trace_format_from_path(const std::string& path);

inline constexpr int32_t kMooncakeBlockSize = 512;
// Synthesised token ids lie in [0, kSyntheticVocabSize).
inline constexpr TokenId kSyntheticVocabSize = 128000;

struct TraceRequest {
  double timestamp = 0.0;            // seconds from the start of its file
  int32_t input_length = 0;          // prompt tokens
  int32_t output_length = 0;         // generated tokens (not replayed by the cache-only job)
  std::vector<uint64_t> block_keys;  // [cdiv(input_length, block_size)]
};

struct Trace {
  int32_t block_size = 0;
  std::vector<TraceRequest> requests;
  std::string source;  // what it was loaded from, for reports

  int64_t num_tokens() const;        // sum of input lengths
  int32_t max_input_length() const;  // 0 when empty
  // Throws InvalidArgument naming the first request that breaks an invariant above.
  void validate() const;
};

// Loads one trace file (or, for kv-cache-tester, a directory: its *.json files in name order).
// Throws InvalidArgument naming the file, the line (or request index) and the field on any
// parse or validation error, and when the file cannot be read.
Trace load_trace(const std::string& path, TraceFormat format);
// Several files merged into one trace, each file its own hash-id scope, requests stably
// ordered by timestamp (files in the given order on ties). All must share one block size.
Trace load_traces(std::span<const std::string> paths, TraceFormat format);

// Parsers over in-memory text; `source` names the text in error messages, `scope` separates
// the hash ids of different files (same text + same scope -> same keys).
Trace parse_mooncake(std::string_view text, std::string_view source, uint64_t scope = 0);
Trace parse_kv_cache_tester(std::string_view text, std::string_view source, uint64_t scope = 0);

// The block key of hash id `id` in `scope` (what the loaders store).
uint64_t scoped_block_key(uint64_t scope, uint64_t id);
// A key no hash id maps to: the private tail block of request `request_index` in `scope`.
uint64_t unique_tail_key(uint64_t scope, uint64_t request_index);

// The token at `offset` of the block with key `key`: a counter-based generator (splitmix64
// stream seeded by the key), so any token is computed directly, without state.
TokenId synthetic_token(uint64_t key, int32_t offset);
// Writes tokens [0, count) of block `key` to out[0, count).
void synthesize_block(uint64_t key, int32_t count, TokenId* out);
// Replaces `out` with the request's input_length prompt tokens.
void synthesize_prompt(const TraceRequest& request, int32_t block_size, std::vector<TokenId>& out);

}  // namespace pagedkv
