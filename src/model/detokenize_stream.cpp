#include "pagedkv/model/detokenize_stream.h"

#include <string_view>

namespace pagedkv {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Bytes a UTF-8 sequence starting with `lead` occupies (1 for a byte that cannot start one,
// so invalid bytes are given out rather than held forever).
std::size_t sequence_length(unsigned char lead) {
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Length of the longest prefix of `text` that may be given out now: without an incomplete
// UTF-8 sequence at its end, nor a trailing run of U+FFFD that a later byte token may replace.
std::size_t complete_prefix_length(std::string_view text) {
  std::size_t end = text.size();
  // A lead byte within the last 3 bytes whose sequence runs past the end.
  for (std::size_t back = 1; back <= 3 && back <= end; ++back) {
    const auto byte = static_cast<unsigned char>(text[end - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    if (sequence_length(byte) > back) end -= back;
    break;
  }
  while (text.substr(0, end).ends_with(kReplacementChar)) end -= kReplacementChar.size();
  return end;
}

}  // namespace

DetokenizeStream::DetokenizeStream(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}

std::string DetokenizeStream::push(TokenId id) {
  window_.push_back(id);
  std::string text;
  try {
    text = tokenizer_->decode(window_);
  } catch (...) {
    window_.pop_back();
    throw;
  }
  const std::size_t complete = complete_prefix_length(text);
  std::string out;
  if (complete > emitted_) {
    out = text.substr(emitted_, complete - emitted_);
    emitted_ = complete;
  }
  if (complete == text.size()) {
    // Everything is given out: keep only the last token, as context for the next one (a
    // SentencePiece word piece decodes without its leading space at the start of a text).
    window_.erase(window_.begin(), window_.end() - 1);
    emitted_ = tokenizer_->decode(window_).size();
  }
  return out;
}

std::string DetokenizeStream::flush() {
  std::string out;
  if (!window_.empty()) {
    const std::string text = tokenizer_->decode(window_);
    if (text.size() > emitted_) out = text.substr(emitted_);
  }
  window_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace pagedkv
