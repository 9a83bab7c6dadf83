#include "pagedkv/model/byte_tokenizer.h"

#include <fmt/format.h>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// A special id must not shadow a byte: ids below 256 always mean that byte.
void check_special(const char* what, std::optional<TokenId> id, int32_t vocab_size) {
  if (!id) return;
  PAGEDKV_CHECK_ARG(*id >= ByteTokenizer::kNumByteTokens && *id < vocab_size,
                    "byte tokenizer: {} token id {} must be in [{}, vocab_size {})", what, *id,
                    ByteTokenizer::kNumByteTokens, vocab_size);
}

}  // namespace

ByteTokenizer::ByteTokenizer(int32_t vocab_size, std::optional<TokenId> bos,
                             std::optional<TokenId> eos)
    : vocab_size_(vocab_size), bos_(bos), eos_(eos) {
  PAGEDKV_CHECK_ARG(vocab_size >= kNumByteTokens,
                    "byte tokenizer: vocab_size {} must be >= {} (one id per byte)", vocab_size,
                    kNumByteTokens);
  check_special("bos", bos, vocab_size);
  check_special("eos", eos, vocab_size);
}

std::vector<TokenId> ByteTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<TokenId>(static_cast<unsigned char>(c)));
  return ids;
}

std::string ByteTokenizer::decode(std::span<const TokenId> ids) const {
  for (TokenId id : ids) {
    PAGEDKV_CHECK_RANGE(id >= 0 && id < vocab_size_, "byte tokenizer: token id {} out of [0, {})",
                        id, vocab_size_);
  }
  std::string text;
  text.reserve(ids.size());
  for (TokenId id : ids) {
    if (id < kNumByteTokens) {
      text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (id != bos_ && id != eos_) {
      fmt::format_to(std::back_inserter(text), "<|{}|>", id);
    }
  }
  return text;
}

}  // namespace pagedkv
