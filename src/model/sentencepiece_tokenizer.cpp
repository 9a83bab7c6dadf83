#include "pagedkv/model/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "pagedkv/common/errors.h"

namespace pagedkv {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

// The override when given, else the model's own id (-1 there means the model has none).
std::optional<TokenId> pick_special(const char* what, std::optional<TokenId> given, int model_id,
                                    int32_t vocab_size) {
  if (given) {
    PAGEDKV_CHECK_ARG(*given >= 0 && *given < vocab_size,
                      "sentencepiece tokenizer: {} token id {} out of [0, vocab_size {})", what,
                      *given, vocab_size);
    return given;
  }
  if (model_id < 0) return std::nullopt;
  return static_cast<TokenId>(model_id);
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path,
                                               int32_t model_vocab_size, std::optional<TokenId> bos,
                                               std::optional<TokenId> eos)
    : impl_(std::make_unique<Impl>()), vocab_size_(model_vocab_size) {
  PAGEDKV_CHECK_ARG(model_vocab_size > 0, "sentencepiece tokenizer: vocab_size {} must be > 0",
                    model_vocab_size);
  const auto status = impl_->processor.Load(model_path);
  PAGEDKV_CHECK_ARG(status.ok(), "sentencepiece tokenizer: cannot load '{}': {}", model_path,
                    status.ToString());
  piece_count_ = impl_->processor.GetPieceSize();
  PAGEDKV_CHECK_ARG(piece_count_ <= model_vocab_size,
                    "sentencepiece tokenizer: '{}' has {} pieces, more than the model's "
                    "vocab_size {}",
                    model_path, piece_count_, model_vocab_size);
  bos_ = pick_special("bos", bos, impl_->processor.bos_id(), model_vocab_size);
  eos_ = pick_special("eos", eos, impl_->processor.eos_id(), model_vocab_size);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<TokenId> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = impl_->processor.Encode(text, &ids);
  PAGEDKV_CHECK_ARG(status.ok(), "sentencepiece tokenizer: cannot encode {} bytes: {}", text.size(),
                    status.ToString());
  return std::vector<TokenId>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(std::span<const TokenId> ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (TokenId id : ids) {
    PAGEDKV_CHECK_RANGE(id >= 0 && id < vocab_size_,
                        "sentencepiece tokenizer: token id {} out of [0, {})", id, vocab_size_);
    // Padding rows of the embedding have no piece; they decode to nothing. So do BOS and EOS
    // when overridden with ids that are ordinary pieces in the model.
    if (id < piece_count_ && id != bos_ && id != eos_) pieces.push_back(id);
  }
  std::string text;
  const auto status = impl_->processor.Decode(pieces, &text);
  PAGEDKV_ASSERT(status.ok(), "sentencepiece decode of {} in-range ids failed: {}", pieces.size(),
                 status.ToString());
  return text;
}

}  // namespace pagedkv
