#include "pagedkv/model_io/model_input_builder.h"

#include <algorithm>
#include <numeric>

#include "pagedkv/common/errors.h"
#include "pagedkv/page_table/batch_layout.h"

namespace pagedkv {

namespace {

size_t sz(int32_t n) { return static_cast<size_t>(n); }

bool contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

void ModelInputBuilderConfig::validate() const {
  PAGEDKV_CHECK_ARG(max_num_reqs > 0, "max_num_reqs must be > 0, got {}", max_num_reqs);
  PAGEDKV_CHECK_ARG(max_model_len > 0, "max_model_len must be > 0, got {}", max_model_len);
  PAGEDKV_CHECK_ARG(max_num_batched_tokens > 0, "max_num_batched_tokens must be > 0, got {}",
                    max_num_batched_tokens);
  PAGEDKV_CHECK_ARG(!page_sizes.empty(), "page_sizes must list one size per KV-cache group");
  for (size_t g = 0; g < page_sizes.size(); ++g) {
    PAGEDKV_CHECK_ARG(page_sizes[g] > 0, "page_sizes[{}] must be > 0, got {}", g, page_sizes[g]);
  }
}

static const ModelInputBuilderConfig& validated(const ModelInputBuilderConfig& config) {
  config.validate();
  return config;
}

ModelInputBuilder::ModelInputBuilder(const ModelInputBuilderConfig& config)
    : config_(validated(config)),
      table_(config.max_num_reqs, config.max_model_len, config.max_num_batched_tokens,
             config.page_sizes) {
  const size_t reqs = sz(config_.max_num_reqs);
  const size_t tokens = sz(config_.max_num_batched_tokens);
  const size_t groups = config_.page_sizes.size();
  row_owner_.assign(reqs, -1);
  entries_.resize(reqs);
  pending_.resize(reqs);
  token_ids_.resize(tokens);
  positions_.resize(tokens);
  query_start_loc_.resize(reqs + 1);
  seq_lens_.resize(reqs);
  computed_.resize(reqs);
  counts_.resize(reqs);
  rows_.resize(reqs);
  std::iota(rows_.begin(), rows_.end(), 0);
  slots_.assign(groups, std::vector<int64_t>(tokens, kSlotMappingPadding));
  slot_views_.resize(groups);
  table_views_.resize(groups);
  logits_indices_.resize(reqs);
  logits_request_index_.resize(reqs);
  request_ids_.resize(reqs);
  tracked_.reserve(reqs);
  index_.reserve(reqs * 2);
  publish_view();
}

int32_t ModelInputBuilder::find(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? -1 : it->second;
}

std::span<const TokenId> ModelInputBuilder::tokens(const std::string& request_id) const {
  const int32_t t = find(request_id);
  if (t < 0) return {};
  return tracked_[sz(t)].tokens;
}

// ---- build() ----

const ModelInput& ModelInputBuilder::build(const SchedulerOutput& out) {
  check_output(out);
  release_rows(out);
  place_rows(out);
  fill_tokens(out);
  fill_slot_mappings();
  publish_view();
  built_step_ = out.step;
  sampled_applied_ = false;
  return input_;
}

// Resolves every entry (kind, source, tracked request, computed, n) and checks everything the
// later phases rely on, so that they cannot fail half-way.
void ModelInputBuilder::check_output(const SchedulerOutput& out) {
  const auto num = static_cast<int64_t>(out.num_scheduled_tokens.size());
  PAGEDKV_CHECK_ARG(num <= config_.max_num_reqs,
                    "the output schedules {} requests, more than max_num_reqs {}", num,
                    config_.max_num_reqs);
  const NewRequestData* new_reqs = out.scheduled_new_reqs.data();
  const CachedRequestData& cached = out.scheduled_cached_reqs;
  PAGEDKV_CHECK_ARG(cached.resumed.size() == cached.request_ids.size() &&
                        cached.new_page_ids.size() == cached.request_ids.size() &&
                        cached.num_computed_tokens.size() == cached.request_ids.size(),
                    "scheduled_cached_reqs has lists of different lengths ({} ids)",
                    cached.request_ids.size());
  PAGEDKV_CHECK_ARG(
      out.scheduled_new_reqs.size() + cached.request_ids.size() == sz(static_cast<int32_t>(num)),
      "the output lists {} new and {} cached requests but schedules {}",
      out.scheduled_new_reqs.size(), cached.request_ids.size(), num);

  int64_t total = 0;
  int32_t rows_needed = 0;  // new and resumed requests that will take a free row
  size_t next_new = 0, next_cached = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(num); ++i) {
    const auto& [id, n] = out.num_scheduled_tokens[sz(i)];
    PAGEDKV_CHECK_ARG(n >= 1, "request '{}' is scheduled for {} tokens; must be >= 1", id, n);
    total += n;
    PAGEDKV_CHECK_ARG(total <= config_.max_num_batched_tokens,
                      "the output schedules more than max_num_batched_tokens {} tokens (at "
                      "request '{}')",
                      config_.max_num_batched_tokens, id);
    PAGEDKV_CHECK_ARG(!contains(out.finished_req_ids, id),
                      "request '{}' is scheduled and listed as finished", id);
    Entry& e = pending_[sz(i)];
    e.num_tokens = n;
    int32_t known = 0;
    if (next_cached < cached.request_ids.size() && cached.request_ids[next_cached] == id) {
      e.source = static_cast<int32_t>(next_cached++);
      e.kind = cached.resumed[sz(e.source)] ? EntryKind::kResumed : EntryKind::kRunning;
      e.tracked = find(id);
      PAGEDKV_CHECK_ARG(e.tracked >= 0, "cached request '{}' is unknown (never scheduled as new)",
                        id);
      e.computed = cached.num_computed_tokens[sz(e.source)];
      const Tracked& t = tracked_[sz(e.tracked)];
      known = static_cast<int32_t>(t.tokens.size());
      const std::optional<GroupPages>& pages = cached.new_page_ids[sz(e.source)];
      if (e.kind == EntryKind::kResumed) {
        PAGEDKV_CHECK_ARG(pages.has_value(), "resumed request '{}' lists no pages", id);
        check_pages(id, *pages, 0, true, e.computed + n);
        rows_needed += t.row < 0 || contains(out.preempted_req_ids, id);
      } else {
        PAGEDKV_CHECK_ARG(t.row >= 0 && !contains(out.preempted_req_ids, id),
                          "running request '{}' holds no page-table row (was it preempted?)", id);
        static const GroupPages kNone;
        check_pages(id, pages ? *pages : kNone, -1 - t.row, false, e.computed + n);
      }
    } else if (next_new < out.scheduled_new_reqs.size() && new_reqs[next_new].request_id == id) {
      e.source = static_cast<int32_t>(next_new++);
      e.kind = EntryKind::kNew;
      e.tracked = -1;
      const NewRequestData& d = new_reqs[sz(e.source)];
      const int32_t existing = find(id);
      PAGEDKV_CHECK_ARG(existing < 0 || contains(out.finished_req_ids, id),
                        "new request '{}' is already tracked", id);
      e.computed = d.num_computed_tokens;
      known = static_cast<int32_t>(d.prompt_token_ids.size());
      PAGEDKV_CHECK_ARG(known <= config_.max_model_len,
                        "new request '{}' has {} prompt tokens, more than max_model_len {}", id,
                        known, config_.max_model_len);
      check_pages(id, d.page_ids, 0, true, e.computed + n);
      ++rows_needed;
    } else {
      PAGEDKV_CHECK_ARG(false,
                        "scheduled request '{}' (entry {}) is not the next of scheduled_new_reqs "
                        "nor of scheduled_cached_reqs",
                        id, i);
    }
    PAGEDKV_CHECK_ARG(e.computed >= 0 && e.computed + n <= known,
                      "request '{}': computed {} + scheduled {} exceeds its {} known tokens", id,
                      e.computed, n, known);
  }
  // Rows stay a conserved resource: every holder after this step's releases, plus the rows
  // new and resumed requests take, must fit.
  int32_t held = 0;
  for (int32_t owner : row_owner_) held += owner >= 0;
  for (const std::string& id : out.finished_req_ids) {
    const int32_t t = find(id);
    held -= t >= 0 && tracked_[sz(t)].row >= 0;
  }
  for (const std::string& id : out.preempted_req_ids) {
    const int32_t t = find(id);
    held -= t >= 0 && tracked_[sz(t)].row >= 0 && !contains(out.finished_req_ids, id);
  }
  PAGEDKV_CHECK_ARG(held + rows_needed <= config_.max_num_reqs,
                    "{} requests would hold page-table rows, more than max_num_reqs {}",
                    held + rows_needed, config_.max_num_reqs);
  entries_.swap(pending_);  // only now: a refused output leaves the last step's entries
  num_entries_ = static_cast<int32_t>(num);
}

// pages [G][p]: the pages a request brings. replace: they are all its pages; otherwise they
// follow the pages of row (-1 - row_code). Checks group count, ids, row capacity and that the
// pages cover seq_len tokens.
void ModelInputBuilder::check_pages(const std::string& id, const GroupPages& pages,
                                    int32_t row_code, bool replace, int32_t seq_len) const {
  const int32_t groups = table_.num_groups();
  PAGEDKV_CHECK_ARG(pages.empty() || static_cast<int32_t>(pages.size()) == groups,
                    "request '{}' lists pages for {} groups; expected {}", id, pages.size(),
                    groups);
  PAGEDKV_CHECK_ARG(!(replace && pages.empty()), "request '{}' lists no pages", id);
  for (int32_t g = 0; g < groups; ++g) {
    const std::vector<PageId> none;
    const std::vector<PageId>& list = pages.empty() ? none : pages[sz(g)];
    for (PageId p : list) {
      PAGEDKV_CHECK_ARG(p >= 0, "request '{}' lists page id {} in group {}; must be >= 0", id, p,
                        g);
    }
    const int32_t before = replace ? 0 : table_[g].num_pages(-1 - row_code);
    const auto count = static_cast<int64_t>(before) + static_cast<int64_t>(list.size());
    const int32_t cols = table_[g].max_num_pages_per_req();
    PAGEDKV_CHECK_ARG(count <= cols,
                      "request '{}' would hold {} pages in group {}, more than the {} columns of "
                      "a row (max_model_len {})",
                      id, count, g, cols, config_.max_model_len);
    const int32_t ps = table_.page_size(g);
    PAGEDKV_CHECK_ARG(count * ps >= seq_len,
                      "request '{}' computes up to {} tokens but its {} pages of group {} hold "
                      "{}",
                      id, seq_len, count, g, count * ps);
  }
}

void ModelInputBuilder::clear_row(int32_t row) {
  const int32_t t = row_owner_[sz(row)];
  if (t >= 0) tracked_[sz(t)].row = -1;
  row_owner_[sz(row)] = -1;
}

void ModelInputBuilder::untrack(int32_t t) {
  Tracked& r = tracked_[sz(t)];
  if (r.row >= 0) clear_row(r.row);
  index_.erase(r.id);
  r.live = false;
  r.tokens.clear();
  free_tracked_.push_back(t);
}

int32_t ModelInputBuilder::track(const NewRequestData& d) {
  int32_t t;
  if (!free_tracked_.empty()) {
    t = free_tracked_.back();
    free_tracked_.pop_back();
  } else {
    t = static_cast<int32_t>(tracked_.size());
    tracked_.emplace_back();
    tracked_.back().tokens.reserve(sz(config_.max_model_len));
  }
  Tracked& r = tracked_[sz(t)];
  r.id = d.request_id;
  r.tokens.assign(d.prompt_token_ids.begin(), d.prompt_token_ids.end());
  r.row = -1;
  r.live = true;
  index_.emplace(r.id, t);
  return t;
}

// Finished requests are forgotten; preempted ones give their row back and keep their tokens
// until they resume (their outputs are recomputed, rule 36).
void ModelInputBuilder::release_rows(const SchedulerOutput& out) {
  for (const std::string& id : out.finished_req_ids) {
    const int32_t t = find(id);
    if (t >= 0) untrack(t);
  }
  for (const std::string& id : out.preempted_req_ids) {
    const int32_t t = find(id);
    if (t >= 0 && tracked_[sz(t)].row >= 0) clear_row(tracked_[sz(t)].row);
  }
}

int32_t ModelInputBuilder::free_row_at_or_after(int32_t first) const {
  for (int32_t r = first; r < config_.max_num_reqs; ++r) {
    if (row_owner_[sz(r)] < 0) return r;
  }
  PAGEDKV_ASSERT(false, "no free page-table row at or after {} (checked before)", first);
  return -1;
}

void ModelInputBuilder::swap_rows(int32_t a, int32_t b) {
  table_.swap_row(a, b);
  std::swap(row_owner_[sz(a)], row_owner_[sz(b)]);
  if (row_owner_[sz(a)] >= 0) tracked_[sz(row_owner_[sz(a)])].row = a;
  if (row_owner_[sz(b)] >= 0) tracked_[sz(row_owner_[sz(b)])].row = b;
}

// Row i := batch entry i. Rows < i already hold entries < i, so a request placed at i comes
// from a row >= i, and a request found in row i moves to a free row > i.
void ModelInputBuilder::place_rows(const SchedulerOutput& out) {
  const CachedRequestData& cached = out.scheduled_cached_reqs;
  for (int32_t i = 0; i < num_entries_; ++i) {
    Entry& e = entries_[sz(i)];
    if (e.kind == EntryKind::kRunning) {
      const int32_t cur = tracked_[sz(e.tracked)].row;
      PAGEDKV_ASSERT(cur >= i, "request slot {} in row {} placed at batch entry {}", e.tracked, cur,
                     i);
      if (cur != i) swap_rows(cur, i);
      const std::optional<GroupPages>& pages = cached.new_page_ids[sz(e.source)];
      if (pages && !pages->empty()) table_.append_row(*pages, i);
      continue;
    }
    const GroupPages* pages;
    if (e.kind == EntryKind::kNew) {
      const NewRequestData& d = out.scheduled_new_reqs[sz(e.source)];
      e.tracked = track(d);
      pages = &d.page_ids;
    } else {
      pages = &*cached.new_page_ids[sz(e.source)];
    }
    Tracked& t = tracked_[sz(e.tracked)];
    if (t.row >= 0 && t.row != i) clear_row(t.row);
    const int32_t occupant = row_owner_[sz(i)];
    if (occupant >= 0 && occupant != e.tracked) {
      const int32_t free_row = free_row_at_or_after(i + 1);
      table_.move_row(i, free_row);
      row_owner_[sz(free_row)] = occupant;
      tracked_[sz(occupant)].row = free_row;
    }
    table_.add_row(*pages, i);
    row_owner_[sz(i)] = e.tracked;
    t.row = i;
  }
  table_.commit(num_entries_);
}

void ModelInputBuilder::fill_tokens(const SchedulerOutput& out) {
  int32_t pos = 0;
  num_logits_ = 0;
  query_start_loc_[0] = 0;
  for (int32_t i = 0; i < num_entries_; ++i) {
    const Entry& e = entries_[sz(i)];
    const Tracked& t = tracked_[sz(e.tracked)];
    const TokenId* src = t.tokens.data() + e.computed;
    std::copy(src, src + e.num_tokens, token_ids_.begin() + pos);
    std::iota(positions_.begin() + pos, positions_.begin() + pos + e.num_tokens, e.computed);
    pos += e.num_tokens;
    query_start_loc_[sz(i) + 1] = pos;
    seq_lens_[sz(i)] = e.computed + e.num_tokens;
    computed_[sz(i)] = e.computed;
    counts_[sz(i)] = e.num_tokens;
    // Rule 48: logits only at the last token of a request that produces one (rule 43).
    if (e.computed + e.num_tokens >= static_cast<int32_t>(t.tokens.size())) {
      logits_indices_[sz(num_logits_)] = pos - 1;
      logits_request_index_[sz(num_logits_)] = i;
      ++num_logits_;
    }
    request_ids_[sz(i)] = out.num_scheduled_tokens[sz(i)].first;
  }
  num_tokens_ = pos;
}

// From the committed tables (what the kernels read), row i = entry i.
void ModelInputBuilder::fill_slot_mappings() {
  const SlotMappingBatch batch{std::span<const int32_t>(rows_).first(sz(num_entries_)),
                               std::span<const int32_t>(computed_).first(sz(num_entries_)),
                               std::span<const int32_t>(counts_).first(sz(num_entries_))};
  for (int32_t g = 0; g < table_.num_groups(); ++g) {
    const PageTable& t = table_[g];
    compute_slot_mapping(t.get_device_tensor(), t.num_pages_per_row(), table_.page_size(g), batch,
                         std::span<int64_t>(slots_[sz(g)]).first(sz(num_tokens_)));
  }
}

void ModelInputBuilder::publish_view() {
  for (int32_t g = 0; g < table_.num_groups(); ++g) {
    slot_views_[sz(g)] = std::span<const int64_t>(slots_[sz(g)]).first(sz(num_tokens_));
    PageTableView v = table_[g].get_device_tensor();
    v.num_rows = num_entries_;
    table_views_[sz(g)] = v;
  }
  input_.num_reqs = num_entries_;
  input_.num_tokens = num_tokens_;
  const size_t b = sz(num_entries_), n = sz(num_tokens_), r = sz(num_logits_);
  input_.token_ids = std::span<const TokenId>(token_ids_).first(n);
  input_.positions = std::span<const int32_t>(positions_).first(n);
  input_.query_start_loc = std::span<const int32_t>(query_start_loc_).first(b + 1);
  input_.seq_lens = std::span<const int32_t>(seq_lens_).first(b);
  input_.slot_mappings = slot_views_;
  input_.slot_mapping = slot_views_.front();
  input_.page_tables = table_views_;
  input_.logits_indices = std::span<const int32_t>(logits_indices_).first(r);
  input_.logits_request_index = std::span<const int32_t>(logits_request_index_).first(r);
  input_.request_ids = std::span<const std::string>(request_ids_).first(b);
}

// ---- update_from_sampled() ----

void ModelInputBuilder::update_from_sampled(const SchedulerOutput& out,
                                            std::span<const std::vector<TokenId>> sampled) {
  PAGEDKV_CHECK_STATE(out.step == built_step_ && !sampled_applied_,
                      "output of step {} is not the last built one (step {}) or was applied",
                      out.step, built_step_);
  PAGEDKV_CHECK_ARG(sampled.size() == sz(num_entries_),
                    "sampled has {} entries; the output schedules {}", sampled.size(),
                    num_entries_);
  for (int32_t i = 0; i < num_entries_; ++i) {
    const Entry& e = entries_[sz(i)];
    const Tracked& t = tracked_[sz(e.tracked)];
    if (e.computed + e.num_tokens < static_cast<int32_t>(t.tokens.size())) continue;
    PAGEDKV_CHECK_ARG(sampled[sz(i)].size() == 1 && sampled[sz(i)][0] >= 0,
                      "request '{}' produces a token and must be given exactly one (>= 0); got {}",
                      t.id, sampled[sz(i)].size());
    PAGEDKV_CHECK_ARG(static_cast<int32_t>(t.tokens.size()) < config_.max_model_len,
                      "request '{}' already has max_model_len {} tokens", t.id,
                      config_.max_model_len);
  }
  for (int32_t i = 0; i < num_entries_; ++i) {
    const Entry& e = entries_[sz(i)];
    Tracked& t = tracked_[sz(e.tracked)];
    if (e.computed + e.num_tokens < static_cast<int32_t>(t.tokens.size())) continue;
    t.tokens.push_back(sampled[sz(i)][0]);
  }
  sampled_applied_ = true;
}

void split_sampled_tokens(const ModelInput& input, std::span<const TokenId> sampled,
                          std::vector<std::vector<TokenId>>& out) {
  PAGEDKV_CHECK_ARG(sampled.size() == input.logits_indices.size(),
                    "sampled has {} tokens; the input has {} logits rows", sampled.size(),
                    input.logits_indices.size());
  out.resize(sz(input.num_reqs));
  for (std::vector<TokenId>& v : out) v.clear();
  for (size_t r = 0; r < sampled.size(); ++r) {
    out[sz(input.logits_request_index[r])].push_back(sampled[r]);
  }
}

// ---- verify() ----

void ModelInputBuilder::verify() const {
  table_.verify();
  int32_t live = 0;
  for (size_t t = 0; t < tracked_.size(); ++t) {
    const Tracked& r = tracked_[t];
    if (!r.live) {
      PAGEDKV_ASSERT(r.row < 0, "free request slot {} holds row {}", t, r.row);
      continue;
    }
    ++live;
    PAGEDKV_ASSERT(find(r.id) == static_cast<int32_t>(t), "request '{}' is not indexed", r.id);
    PAGEDKV_ASSERT(static_cast<int32_t>(r.tokens.size()) <= config_.max_model_len,
                   "request '{}' has {} tokens, more than max_model_len {}", r.id, r.tokens.size(),
                   config_.max_model_len);
    if (r.row >= 0) {
      PAGEDKV_ASSERT(row_owner_[sz(r.row)] == static_cast<int32_t>(t),
                     "request '{}' says row {} but the row belongs to {}", r.id, r.row,
                     row_owner_[sz(r.row)]);
    }
  }
  PAGEDKV_ASSERT(live == num_tracked_requests(), "{} live request slots, {} indexed", live,
                 num_tracked_requests());
  for (int32_t row = 0; row < config_.max_num_reqs; ++row) {
    const int32_t t = row_owner_[sz(row)];
    if (t < 0) continue;
    PAGEDKV_ASSERT(tracked_[sz(t)].live && tracked_[sz(t)].row == row,
                   "row {} belongs to request slot {}, which does not hold it", row, t);
  }
  // Rows change only in build(), which leaves row i holding batch entry i.
  for (int32_t i = 0; i < num_entries_; ++i) {
    PAGEDKV_ASSERT(row_owner_[sz(i)] == entries_[sz(i)].tracked,
                   "row {} holds request slot {}, not batch entry {}'s ({})", i, row_owner_[sz(i)],
                   i, entries_[sz(i)].tracked);
  }
}

}  // namespace pagedkv
