// pagedkv/model/sentencepiece_tokenizer.h - a SentencePiece model (`tokenizer.model`, as
// Llama and its relatives ship it) behind the Tokenizer interface.
//
// Example:
//   SentencePieceTokenizer tok("/models/llama/tokenizer.model", /*model_vocab_size=*/32000,
//                              std::nullopt, std::nullopt);  // BOS/EOS from the model
//   auto ids = tok.encode("Hello world");                   // no BOS added
//   tok.decode(ids);                                         // "Hello world"
//
// Invariants:
//   - piece_count() <= vocab_size(): the model's embedding has a row for every piece; ids in
//     [piece_count(), vocab_size()) are padding rows and decode to nothing.
//   - bos/eos given here override the model's; a model that disables one (id -1) and no
//     override leaves it nullopt. Given ids must lie in [0, vocab_size).
//   - encode adds neither BOS nor EOS; control pieces (BOS, EOS) decode to nothing.
//
// Errors (all InvalidArgument, naming the path or the values): the file cannot be read or
// parsed; its piece count exceeds model_vocab_size; bos/eos outside [0, model_vocab_size).
// decode throws OutOfRange for an id outside [0, vocab_size).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pagedkv/model/tokenizer.h"

namespace pagedkv {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model_path, int32_t model_vocab_size,
                         std::optional<TokenId> bos, std::optional<TokenId> eos);
  ~SentencePieceTokenizer() override;

  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(std::span<const TokenId> ids) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<TokenId> bos_token_id() const override { return bos_; }
  std::optional<TokenId> eos_token_id() const override { return eos_; }

  // Pieces in the SentencePiece model (<= vocab_size()).
  int32_t piece_count() const { return piece_count_; }

 private:
  struct Impl;  // keeps sentencepiece's headers out of this one
  std::unique_ptr<Impl> impl_;
  int32_t vocab_size_;
  int32_t piece_count_;
  std::optional<TokenId> bos_;
  std::optional<TokenId> eos_;
};

}  // namespace pagedkv
