// Request: tokens, tenant/adapter keys and incrementally maintained page hashes.
#include "pagedkv/hash/request.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

void check_token_ids(std::span<const TokenId> ids, std::string_view what) {
  // A branch-free OR of the sign bits vectorizes; the index is searched for only on error. A
  // single token (a decode step) skips the vector loop's setup.
  if (ids.size() == 1 && ids[0] >= 0) return;
  uint32_t signs = 0;
  for (const TokenId id : ids) signs |= static_cast<uint32_t>(id);
  if ((signs >> 31) == 0) return;
  for (size_t i = 0; i < ids.size(); ++i) {
    PAGEDKV_CHECK_ARG(ids[i] >= 0, "{} token {} has negative id {}", what, i, ids[i]);
  }
}

// Fills `out` with the keys of page [start, end): inputs are sorted and disjoint, so the
// overlapping ones are a contiguous run found by binary search.
void fill_extra_keys(const RequestOptions& opts, int64_t page_index, int64_t start, int64_t end,
                     PageExtraKeys& out) {
  out.lora_id = opts.lora_id;
  out.cache_salt = page_index == 0 ? std::string_view(opts.cache_salt) : std::string_view();
  out.mm_inputs.clear();
  const auto& mm = opts.mm_inputs;
  auto it = std::upper_bound(
      mm.begin(), mm.end(), start,
      [](int64_t pos, const MultiModalInput& in) { return pos < in.offset + in.length; });
  for (; it != mm.end() && it->offset < end; ++it) out.mm_inputs.push_back(&*it);
}

}  // namespace

Request::Request(std::string request_id, std::vector<TokenId> prompt_token_ids,
                 RequestOptions options)
    : hasher_(options.hash_algorithm) {
  PAGEDKV_CHECK_ARG(!request_id.empty(), "request id must not be empty");
  PAGEDKV_CHECK_ARG(!prompt_token_ids.empty(), "request '{}' has an empty prompt", request_id);
  PAGEDKV_CHECK_ARG(
      prompt_token_ids.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
      "request '{}' prompt has {} tokens, at most {} allowed", request_id, prompt_token_ids.size(),
      std::numeric_limits<int32_t>::max());
  check_token_ids(prompt_token_ids, "prompt");
  const auto prompt_len = static_cast<int64_t>(prompt_token_ids.size());
  int64_t prev_end = 0;
  for (size_t i = 0; i < options.mm_inputs.size(); ++i) {
    const MultiModalInput& mm = options.mm_inputs[i];
    PAGEDKV_CHECK_ARG(!mm.content_hash.empty(), "multimodal input {} has an empty content hash", i);
    PAGEDKV_CHECK_ARG(mm.length > 0, "multimodal input {} has length {}, must be > 0", i,
                      mm.length);
    PAGEDKV_CHECK_ARG(mm.offset >= 0 && mm.offset <= prompt_len - mm.length,
                      "multimodal input {} covers [{}, {}), outside the prompt [0, {})", i,
                      mm.offset, mm.offset + mm.length, prompt_len);
    PAGEDKV_CHECK_ARG(mm.offset >= prev_end,
                      "multimodal input {} starts at {}, before the previous input ends ({}): "
                      "inputs must be sorted by offset and must not overlap",
                      i, mm.offset, prev_end);
    prev_end = mm.offset + mm.length;
  }
  id_ = std::move(request_id);
  options_ = std::move(options);
  tokens_ = std::move(prompt_token_ids);
  num_prompt_tokens_ = static_cast<int32_t>(tokens_.size());
}

void Request::append_output_token_ids(std::span<const TokenId> ids) {
  check_token_ids(ids, "output");
  PAGEDKV_CHECK_ARG(
      ids.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max() - num_tokens()),
      "request '{}' would exceed {} tokens ({} + {})", id_, std::numeric_limits<int32_t>::max(),
      num_tokens(), ids.size());
  // Reserve first so that a failed allocation leaves the request unchanged. A page fills when
  // the tokens reach the end of the page after the hashed ones: checked by a multiplication,
  // as most appends (a decode token) fill none and a 64-bit division costs more than the rest.
  const int64_t after = num_tokens() + static_cast<int64_t>(ids.size());
  auto fills_a_page = [](const TrackedHashes& t, int64_t num_tokens) {
    return num_tokens >= (static_cast<int64_t>(t.hashes.size()) + 1) * t.page_size;
  };
  for_each_tracked([&](TrackedHashes& t) {
    if (fills_a_page(t, after)) reserve_hashes(t, after / t.page_size);
  });
  if (ids.size() == 1) {
    tokens_.push_back(ids[0]);
  } else {
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  }
  for_each_tracked([&](TrackedHashes& t) {
    if (fills_a_page(t, after)) extend_hashes(t);
  });
}

// Room for `num_pages` hashes, growing geometrically: a decode fills one page at a time, and
// growing to the exact size moved every hash each time.
void Request::reserve_hashes(TrackedHashes& t, int64_t num_pages) {
  const size_t cap = t.hashes.capacity();
  if (static_cast<size_t>(num_pages) <= cap) return;
  t.hashes.reserve(std::max(static_cast<size_t>(num_pages), 2 * cap));
}

void Request::fail_num_computed_tokens(int32_t n) const {
  PAGEDKV_CHECK_ARG(false, "num_computed_tokens {} of request '{}' outside [0, {}]", n, id_,
                    num_tokens());
  std::abort();  // not reached: the check above throws
}

const std::vector<PageHash>& Request::page_hashes(int32_t page_size) const {
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  if (first_.page_size == page_size) return first_.hashes;
  for (TrackedHashes& t : more_) {
    if (t.page_size == page_size) return t.hashes;
  }
  const bool is_first = first_.page_size == 0;
  TrackedHashes& t = is_first ? first_ : more_.emplace_back(TrackedHashes{page_size, {}});
  t.page_size = page_size;
  try {
    extend_hashes(t);
  } catch (...) {
    if (is_first) {
      first_ = TrackedHashes{0, {}};
    } else {
      more_.pop_back();
    }
    throw;
  }
  return t.hashes;
}

PageExtraKeys Request::extra_keys_for_page(int32_t page_index, int32_t page_size) const {
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  const int32_t num_pages = cdiv(num_tokens(), page_size);
  PAGEDKV_CHECK_RANGE(page_index >= 0 && page_index < num_pages,
                      "page {} out of range [0, {}) for request '{}' ({} tokens, page size {})",
                      page_index, num_pages, id_, num_tokens(), page_size);
  PageExtraKeys keys;
  const int64_t start = int64_t{page_index} * page_size;
  fill_extra_keys(options_, page_index, start, start + page_size, keys);
  return keys;
}

// Hashes the pages that filled since the last call: each page exactly once, chained onto the
// previous page's hash.
void Request::extend_hashes(TrackedHashes& t) const {
  const int64_t ps = t.page_size;
  const int64_t full = num_tokens() / ps;
  PageExtraKeys keys;  // reused: its vector keeps its capacity across pages
  // Room for every full page at once: growing one page at a time moved the hashes ~log(n) times.
  reserve_hashes(t, full);
  for (int64_t i = static_cast<int64_t>(t.hashes.size()); i < full; ++i) {
    const int64_t start = i * ps;
    fill_extra_keys(options_, i, start, start + ps, keys);
    const PageHash* parent = i == 0 ? nullptr : &t.hashes.back();
    const PageHash h = hasher_.hash_page(
        parent, std::span<const TokenId>(tokens_).subspan(static_cast<size_t>(start), ps), keys);
    t.hashes.push_back(h);
    ++num_pages_hashed_;
  }
}

void Request::verify() const {
  PAGEDKV_ASSERT(!id_.empty(), "request id is empty");
  PAGEDKV_ASSERT(num_prompt_tokens_ > 0 && num_prompt_tokens_ <= num_tokens(),
                 "num_prompt_tokens {} outside (0, {}]", num_prompt_tokens_, num_tokens());
  PAGEDKV_ASSERT(num_computed_tokens_ >= 0 && num_computed_tokens_ <= num_tokens(),
                 "num_computed_tokens {} outside [0, {}]", num_computed_tokens_, num_tokens());
  PAGEDKV_ASSERT(std::all_of(tokens_.begin(), tokens_.end(), [](TokenId t) { return t >= 0; }),
                 "request '{}' holds a negative token id", id_);
  PAGEDKV_ASSERT(first_.page_size >= 0 && (first_.page_size > 0 || more_.empty()),
                 "first tracked page size {} with {} more", first_.page_size, more_.size());
  PAGEDKV_ASSERT(first_.page_size > 0 || first_.hashes.empty(),
                 "{} hashes tracked for no page size", first_.hashes.size());
  std::vector<const TrackedHashes*> tracked;
  for_each_tracked([&](const TrackedHashes& t) { tracked.push_back(&t); });
  int64_t expected_hashed = 0;
  for (size_t k = 0; k < tracked.size(); ++k) {
    const TrackedHashes& t = *tracked[k];
    PAGEDKV_ASSERT(t.page_size > 0, "tracked page size {} is not positive", t.page_size);
    for (size_t j = 0; j < k; ++j) {
      PAGEDKV_ASSERT(tracked[j]->page_size != t.page_size, "page size {} tracked twice",
                     t.page_size);
    }
    PAGEDKV_ASSERT(static_cast<int64_t>(t.hashes.size()) == num_tokens() / t.page_size,
                   "page size {}: {} hashes for {} full pages", t.page_size, t.hashes.size(),
                   num_tokens() / t.page_size);
    expected_hashed += static_cast<int64_t>(t.hashes.size());
    PageExtraKeys keys;
    for (size_t i = 0; i < t.hashes.size(); ++i) {
      const int64_t start = static_cast<int64_t>(i) * t.page_size;
      fill_extra_keys(options_, static_cast<int64_t>(i), start, start + t.page_size, keys);
      const PageHash h =
          hasher_.hash_page(i == 0 ? nullptr : &t.hashes[i - 1],
                            std::span<const TokenId>(tokens_).subspan(
                                static_cast<size_t>(start), static_cast<size_t>(t.page_size)),
                            keys);
      PAGEDKV_ASSERT(h == t.hashes[i], "page size {}: stored hash of page {} is stale", t.page_size,
                     i);
    }
  }
  PAGEDKV_ASSERT(num_pages_hashed_ == expected_hashed,
                 "{} pages hashed, {} hashes held: a page was hashed twice", num_pages_hashed_,
                 expected_hashed);
}

}  // namespace pagedkv
