#include "pagedkv/server/completion_text.h"

#include <algorithm>

#include "pagedkv/common/errors.h"

namespace pagedkv {

CompletionText::CompletionText(const Tokenizer& tokenizer, std::vector<std::string> stop,
                               bool with_logprobs)
    : tokenizer_(&tokenizer),
      stream_(tokenizer),
      stop_(std::move(stop)),
      with_logprobs_(with_logprobs) {
  for (const std::string& s : stop_) {
    PAGEDKV_CHECK_ARG(!s.empty(), "stop strings must not be empty");
    max_stop_ = std::max(max_stop_, s.size());
  }
}

LogprobEntry CompletionText::make_entry(TokenId id, std::span<const TokenLogprob> top) const {
  LogprobEntry e;
  const TokenId one[] = {id};
  e.token = tokenizer_->decode(one);
  for (const TokenLogprob& t : top) {
    const TokenId tid[] = {t.token};
    if (t.token == id) e.logprob = t.logprob;
    e.top.emplace_back(tokenizer_->decode(tid), t.logprob);
  }
  return e;
}

bool CompletionText::cut_at_stop(size_t from) {
  size_t best = std::string::npos;
  for (const std::string& s : stop_) {
    const size_t start = from >= s.size() - 1 ? from - (s.size() - 1) : 0;
    const size_t pos = text_.find(s, start);
    best = std::min(best, pos);
  }
  if (best == std::string::npos) return false;
  text_.resize(std::max(best, sent_));
  return true;
}

size_t CompletionText::held_back() const {
  // The longest suffix of the unsent text that is a proper prefix of some stop string.
  const size_t unsent = text_.size() - sent_;
  for (size_t n = std::min(unsent, max_stop_ == 0 ? 0 : max_stop_ - 1); n > 0; --n) {
    const std::string_view tail(text_.data() + text_.size() - n, n);
    for (const std::string& s : stop_) {
      if (std::string_view(s).substr(0, n) == tail) return n;
    }
  }
  return 0;
}

CompletionText::Delta CompletionText::push(std::span<const TokenId> ids,
                                           std::span<const std::vector<TokenLogprob>> logprobs,
                                           bool finished, bool skip_last_text) {
  Delta d;
  if (stopped_) return d;
  PAGEDKV_CHECK_ARG(!with_logprobs_ || logprobs.size() == ids.size(),
                    "{} logprob lists for {} tokens", logprobs.size(), ids.size());
  const size_t before = text_.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    ++num_tokens_;
    if (with_logprobs_) {
      d.logprobs.push_back(make_entry(ids[i], logprobs[i]));
      d.logprobs.back().text_offset = offset_;
    }
    if (skip_last_text && finished && i + 1 == ids.size()) break;
    const std::string piece = stream_.push(ids[i]);
    text_ += piece;
    offset_ += static_cast<int64_t>(piece.size());
  }
  if (finished) {
    const std::string rest = stream_.flush();
    text_ += rest;
    offset_ += static_cast<int64_t>(rest.size());
  }
  if (!stop_.empty() && cut_at_stop(before)) {
    stopped_ = true;
    d.stopped = true;
    finished = true;
  }
  const size_t end = finished ? text_.size() : text_.size() - held_back();
  if (end > sent_) {
    d.text = text_.substr(sent_, end - sent_);
    sent_ = end;
  }
  return d;
}

}  // namespace pagedkv
