// pagedkv/hash/request.h - one inference request as the cache layers see it: its tokens, the
// keys that separate it from other tenants/adapters, and its page hashes kept current.
// Scheduling state (status, priority, arrival, output budget, preemptions) belongs to the
// scheduler's own sequence type, not here.
//
// Example:
//   RequestOptions opts;
//   opts.cache_salt = "tenant-a";
//   Request req("r1", {1, 2, 3, ..., 48}, opts);
//   const auto& hashes = req.page_hashes(16);     // 3 full pages -> 3 hashes
//   req.append_output_token_ids({49});            // no new full page yet: no hashing
//   req.set_num_computed_tokens(32);
//
// Invariants:
//   - page_hashes(ps).size() == num_tokens() / ps for every tracked page size ps; each page is
//     hashed exactly once, when it fills (tracked sizes are hashed eagerly on append).
//   - 0 <= num_computed_tokens() <= num_tokens().
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"

namespace pagedkv {

struct RequestOptions {
  std::string cache_salt;                  // page 0 extra key; different salts never share
  std::optional<int64_t> lora_id;          // LoRA adapter identity
  std::vector<MultiModalInput> mm_inputs;  // sorted by offset, non-overlapping, inside the prompt
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
};

// Whether two request ids are equal, compared inline: ids are short, and the hot paths that
// check an id (a manager slot hint, a scheduler output) would spend more on a library call.
inline bool equal_ids(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  auto load = [](const char* p, auto word) {
    std::memcpy(&word, p, sizeof(word));
    return word;
  };
  if (n >= 8) {  // 8-byte words, the last one overlapping the one before
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (load(x + i, uint64_t{}) != load(y + i, uint64_t{})) return false;
    }
    return load(x + n - 8, uint64_t{}) == load(y + n - 8, uint64_t{});
  }
  if (n >= 4) {  // two overlapping 4-byte words
    return load(x, uint32_t{}) == load(y, uint32_t{}) &&
           load(x + n - 4, uint32_t{}) == load(y + n - 4, uint32_t{});
  }
  if (n >= 2) {  // two overlapping 2-byte words
    return load(x, uint16_t{}) == load(y, uint16_t{}) &&
           load(x + n - 2, uint16_t{}) == load(y + n - 2, uint16_t{});
  }
  return n == 0 || x[0] == y[0];
}

class Request {
 public:
  // Throws InvalidArgument on an empty id, an empty prompt, a negative token id, an unknown
  // hash algorithm or multimodal inputs that are unsorted, overlapping, outside the prompt, of
  // length <= 0 or with an empty content hash.
  Request(std::string request_id, std::vector<TokenId> prompt_token_ids,
          RequestOptions options = {});

  const std::string& request_id() const { return id_; }
  const RequestOptions& options() const { return options_; }
  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  std::span<const TokenId> all_token_ids() const { return tokens_; }
  std::span<const TokenId> prompt_token_ids() const {
    return std::span<const TokenId>(tokens_).first(num_prompt_tokens_);
  }

  // Appends generated tokens; hashes pages that fill for every tracked page size.
  // Throws InvalidArgument on a negative token id (nothing appended then).
  void append_output_token_ids(std::span<const TokenId> ids);
  // Appends one generated token, as append_output_token_ids({id}) does; inline when it fills
  // no page (most decode tokens).
  void append_output_token_id(TokenId id) {
    if (id >= 0 && num_tokens() < std::numeric_limits<int32_t>::max() &&
        !may_fill_a_page(num_tokens() + int64_t{1})) {
      tokens_.push_back(id);
      return;
    }
    append_output_token_ids(std::span<const TokenId>(&id, 1));
  }

  int32_t num_computed_tokens() const { return num_computed_tokens_; }
  // Throws InvalidArgument unless 0 <= n <= num_tokens().
  void set_num_computed_tokens(int32_t n) {
    if (n < 0 || n > num_tokens()) [[unlikely]]
      fail_num_computed_tokens(n);
    num_computed_tokens_ = n;
  }

  // Hashes of the full pages at `page_size` (tracked from the first call on; later appends
  // extend it eagerly). Throws InvalidArgument if page_size <= 0. The reference stays valid
  // for the request's lifetime (its contents grow as pages fill); it is a reference into this
  // object, so a request moved from keeps it (emptied) and the new one has its own.
  const std::vector<PageHash>& page_hashes(int32_t page_size) const;
  // The extra keys of page `page_index` at `page_size` (page 0 carries the salt). The result
  // points into this request. Throws InvalidArgument if page_size <= 0, OutOfRange unless
  // the page holds at least one token (0 <= page_index < cdiv(num_tokens, page_size)).
  PageExtraKeys extra_keys_for_page(int32_t page_index, int32_t page_size) const;

  const PageHasher& hasher() const { return hasher_; }
  // Pages hashed so far over all tracked page sizes (each page is hashed once).
  int64_t num_pages_hashed() const { return num_pages_hashed_; }
  // Walks every invariant above; throws InternalError naming the first that fails.
  // Re-hashes every tracked page, so it costs as much as hashing the request from scratch.
  void verify() const;

 private:
  struct TrackedHashes {
    int32_t page_size;
    std::vector<PageHash> hashes;
  };
  [[noreturn]] void fail_num_computed_tokens(int32_t n) const;
  // False only when growing to num_tokens tokens fills no page of any tracked size (true also
  // when several sizes are tracked: append_output_token_ids then checks each).
  bool may_fill_a_page(int64_t num_tokens) const {
    if (first_.page_size == 0) return false;
    return !more_.empty() ||
           num_tokens >= (static_cast<int64_t>(first_.hashes.size()) + 1) * first_.page_size;
  }
  static void reserve_hashes(TrackedHashes& t, int64_t num_pages);
  void extend_hashes(TrackedHashes& t) const;
  // Calls fn(t) for every tracked page size, the first one first.
  template <typename Fn>
  void for_each_tracked(Fn&& fn) const {
    if (first_.page_size == 0) return;
    fn(first_);
    for (TrackedHashes& t : more_) fn(t);
  }

  // What a decode step reads and writes first, the options (read when a page fills) last.
  std::string id_;
  std::vector<TokenId> tokens_;
  int32_t num_prompt_tokens_ = 0;
  int32_t num_computed_tokens_ = 0;
  PageHasher hasher_;
  // The page sizes whose hashes are tracked: the first one inline (page_size 0: none yet) -
  // one is the common case, and an append then reads nothing outside the request - the
  // others in a list (nodes do not move, so page_hashes() references survive new sizes; an
  // empty list is one pointer to test).
  mutable TrackedHashes first_{0, {}};
  mutable std::list<TrackedHashes> more_;
  mutable int64_t num_pages_hashed_ = 0;
  RequestOptions options_;
};

}  // namespace pagedkv
