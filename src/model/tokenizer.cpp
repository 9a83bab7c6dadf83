#include "pagedkv/model/tokenizer.h"

#include <filesystem>

#include "pagedkv/common/errors.h"
#include "pagedkv/model/byte_tokenizer.h"
#include "pagedkv/model/sentencepiece_tokenizer.h"

namespace pagedkv {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, int32_t model_vocab_size,
                                          std::optional<TokenId> bos, std::optional<TokenId> eos) {
  namespace fs = std::filesystem;
  std::error_code ec;
  PAGEDKV_CHECK_ARG(fs::is_directory(model_dir, ec), "model directory '{}' is not a directory",
                    model_dir);
  const fs::path sp_model = fs::path(model_dir) / "tokenizer.model";
  if (fs::exists(sp_model, ec)) {
    return std::make_unique<SentencePieceTokenizer>(sp_model.string(), model_vocab_size, bos, eos);
  }
  return std::make_unique<ByteTokenizer>(model_vocab_size, bos, eos);
}

}  // namespace pagedkv
