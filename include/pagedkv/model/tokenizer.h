// pagedkv/model/tokenizer.h - turns text into token ids and back, for the engine's prompts and
// outputs; load_tokenizer picks the implementation a model directory calls for.
//
// Example:
//   auto tok = pagedkv::load_tokenizer("/models/tiny", config.vocab_size, config.bos_token_id,
//                                      config.eos_token_id);
//   std::vector<pagedkv::TokenId> ids = tok->encode("Hello");  // no BOS: the engine adds it
//   std::string text = tok->decode(ids);                       // "Hello"
//
// Implementations:
//   - SentencePieceTokenizer (sentencepiece_tokenizer.h) when the directory holds
//     `tokenizer.model`;
//   - ByteTokenizer (byte_tokenizer.h) otherwise: ids 0-255 are the UTF-8 bytes of the text.
//
// Contract (every implementation):
//   - encode never adds BOS or EOS; whether a prompt starts with BOS is the engine's choice.
//   - decode accepts ids in [0, vocab_size()) and throws OutOfRange naming any other id.
//     BOS and EOS decode to nothing. decode(encode(text)) == text for the byte tokenizer, and
//     for SentencePiece up to its normalisation (whitespace runs, NFKC).
//   - vocab_size() is the model's vocabulary (rows of the embedding), which may exceed the
//     tokenizer's own piece count (padded vocabularies).
//   - Calls are const and safe to make from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The token ids of `text` (any bytes; invalid UTF-8 is the implementation's business).
  virtual std::vector<TokenId> encode(std::string_view text) const = 0;
  // ids [n] each in [0, vocab_size()); OutOfRange otherwise.
  virtual std::string decode(std::span<const TokenId> ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<TokenId> bos_token_id() const { return std::nullopt; }
  virtual std::optional<TokenId> eos_token_id() const { return std::nullopt; }
};

// The tokenizer of the model in `model_dir`: SentencePiece when `model_dir/tokenizer.model`
// exists, the byte tokenizer otherwise. `model_vocab_size` is config.json's vocab_size; `bos`
// and `eos` are config.json's bos_token_id / eos_token_id (nullopt when absent; SentencePiece
// then takes the model's own).
// Throws InvalidArgument when model_dir is not a directory, when tokenizer.model cannot be
// loaded, or when the chosen implementation rejects the sizes or ids (see its header).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, int32_t model_vocab_size,
                                          std::optional<TokenId> bos, std::optional<TokenId> eos);

}  // namespace pagedkv
