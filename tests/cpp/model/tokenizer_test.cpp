#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/model/byte_tokenizer.h"
#include "pagedkv/model/detokenize_stream.h"
#include "pagedkv/model/sentencepiece_tokenizer.h"
#include "pagedkv/model/tokenizer.h"

namespace pagedkv {
namespace {

namespace fs = std::filesystem;

// "h\u00e9llo \u4e16\u754c \U0001F642": 1-, 2-, 3- and 4-byte characters.
const std::string kMultibyte = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82";

std::string stream_all(const Tokenizer& tok, const std::vector<TokenId>& ids,
                       std::vector<std::string>* pieces = nullptr) {
  DetokenizeStream stream(tok);
  std::string text;
  for (TokenId id : ids) {
    std::string piece = stream.push(id);
    if (pieces) pieces->push_back(piece);
    text += piece;
  }
  return text + stream.flush();
}

// ---- ByteTokenizer ----

TEST(ByteTokenizer, EncodeGivesTheUtf8BytesAndDecodeRestoresThem) {
  ByteTokenizer tok(512, 256, 257);
  const std::vector<TokenId> ids = tok.encode(kMultibyte);
  ASSERT_EQ(ids.size(), kMultibyte.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], static_cast<unsigned char>(kMultibyte[i])) << i;
  }
  EXPECT_EQ(ids[1], 0xC3);
  EXPECT_EQ(tok.decode(ids), kMultibyte);
}

TEST(ByteTokenizer, EveryByteValueRoundTrips) {
  ByteTokenizer tok(256, std::nullopt, std::nullopt);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(tok.decode(tok.encode(all)), all);
}

TEST(ByteTokenizer, EncodeAddsNoBosOrEos) {
  ByteTokenizer tok(300, 256, 257);
  EXPECT_EQ(tok.encode("ab"), (std::vector<TokenId>{'a', 'b'}));
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.bos_token_id(), 256);
  EXPECT_EQ(tok.eos_token_id(), 257);
  EXPECT_EQ(tok.vocab_size(), 300);
}

TEST(ByteTokenizer, BosAndEosDecodeToNothingOtherSpecialsToAPlaceholder) {
  ByteTokenizer tok(512, 256, 257);
  const std::vector<TokenId> ids = {256, 'h', 300, 'i', 511, 257};
  EXPECT_EQ(tok.decode(ids), "h<|300|>i<|511|>");
  // The placeholder is display only: encoding it gives its bytes, not the id.
  EXPECT_EQ(tok.encode("<|300|>").size(), 7u);
}

TEST(ByteTokenizer, WithoutBosOrEosEverySpecialIsShown) {
  ByteTokenizer tok(260, std::nullopt, std::nullopt);
  EXPECT_EQ(tok.decode(std::vector<TokenId>{256, 259}), "<|256|><|259|>");
  EXPECT_FALSE(tok.bos_token_id().has_value());
}

TEST(ByteTokenizer, RejectsVocabBelow256AndSpecialsOutsideTheSpecialRange) {
  EXPECT_THROW(ByteTokenizer(255, std::nullopt, std::nullopt), InvalidArgument);
  EXPECT_THROW(ByteTokenizer(512, 1, std::nullopt), InvalidArgument);    // a byte
  EXPECT_THROW(ByteTokenizer(512, std::nullopt, 512), InvalidArgument);  // past the vocab
  try {
    ByteTokenizer(100, std::nullopt, std::nullopt);
    FAIL() << "vocab_size 100 accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("100"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
  }
}

TEST(ByteTokenizer, DecodeRejectsIdsOutsideTheVocab) {
  ByteTokenizer tok(300, std::nullopt, std::nullopt);
  EXPECT_THROW(tok.decode(std::vector<TokenId>{'a', -1}), OutOfRange);
  EXPECT_THROW(tok.decode(std::vector<TokenId>{300}), OutOfRange);
}

// ---- DetokenizeStream ----

TEST(DetokenizeStream, HoldsBackAMultibyteCharacterSplitAcrossTokens) {
  ByteTokenizer tok(256, std::nullopt, std::nullopt);
  std::vector<std::string> pieces;
  const std::string text =
      "a\xE4\xB8\x96"
      "b";  // a, U+4E16 (3 bytes), b
  EXPECT_EQ(stream_all(tok, tok.encode(text), &pieces), text);
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "", "", "\xE4\xB8\x96", "b"}));
}

TEST(DetokenizeStream, HoldsBackAFourByteCharacterUntilItsLastByte) {
  ByteTokenizer tok(256, std::nullopt, std::nullopt);
  std::vector<std::string> pieces;
  const std::string emoji = "\xF0\x9F\x99\x82";
  EXPECT_EQ(stream_all(tok, tok.encode(emoji), &pieces), emoji);
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "", emoji}));
}

TEST(DetokenizeStream, ConcatenationEqualsDecodeIncludingSpecials) {
  ByteTokenizer tok(300, 256, 257);
  std::vector<TokenId> ids = tok.encode(kMultibyte);
  ids.insert(ids.begin() + 2, 290);  // inside "é"'s two bytes
  ids.insert(ids.begin(), 256);
  ids.push_back(257);
  std::vector<std::string> pieces;
  EXPECT_EQ(stream_all(tok, ids, &pieces), tok.decode(ids));
}

TEST(DetokenizeStream, FlushGivesOutAnIncompleteTailAndStartsOver) {
  ByteTokenizer tok(256, std::nullopt, std::nullopt);
  DetokenizeStream stream(tok);
  EXPECT_EQ(stream.push('x'), "x");
  EXPECT_EQ(stream.push(0xE4), "");
  EXPECT_EQ(stream.push(0xB8), "");
  EXPECT_EQ(stream.flush(), "\xE4\xB8");
  EXPECT_EQ(stream.flush(), "");
  EXPECT_EQ(stream.push('y'), "y");
}

TEST(DetokenizeStream, ABadIdThrowsAndLeavesTheStreamAsItWas) {
  ByteTokenizer tok(256, std::nullopt, std::nullopt);
  DetokenizeStream stream(tok);
  EXPECT_EQ(stream.push(0xC3), "");
  EXPECT_THROW(stream.push(1000), OutOfRange);
  EXPECT_EQ(stream.push(0xA9), "\xC3\xA9");
}

// ---- SentencePiece (models trained here with the sentencepiece trainer library) ----

const char* const kCorpus[] = {
    "the quick brown fox jumps over the lazy dog",
    "paged attention keeps the key value cache in fixed size pages",
    "a scheduler decides which requests run in the next step",
    "the engine streams tokens back to the client as they are made",
    "pages are shared between requests with the same prefix",
    "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C",
    "hello world hello pages hello tokens",
};

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("pagedkv_sp_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "bpe");
    fs::create_directories(dir_ / "bytes");
    fs::create_directories(dir_ / "plain");
    const fs::path corpus = dir_ / "corpus.txt";
    {
      std::ofstream out(corpus);
      for (int rep = 0; rep < 20; ++rep) {
        for (const char* line : kCorpus) out << line << "\n";
      }
    }
    train(corpus, dir_ / "bpe" / "tokenizer", "--vocab_size=100 --model_type=bpe");
    train(corpus, dir_ / "bytes" / "tokenizer",
          "--vocab_size=320 --model_type=bpe --byte_fallback=true");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static void train(const fs::path& corpus, const fs::path& prefix, const std::string& extra) {
    const std::string args = "--input=" + corpus.string() + " --model_prefix=" + prefix.string() +
                             " --character_coverage=1.0 --hard_vocab_limit=false" +
                             " --minloglevel=2 " + extra;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    ASSERT_TRUE(status.ok()) << status.ToString();
    fs::rename(prefix.string() + ".model", prefix.parent_path() / "tokenizer.model");
  }

  static fs::path dir_;
};

fs::path SentencePieceTest::dir_;

TEST_F(SentencePieceTest, LoadTokenizerPicksSentencePieceOnlyWhenTokenizerModelExists) {
  auto sp = load_tokenizer((dir_ / "bpe").string(), 128, std::nullopt, std::nullopt);
  EXPECT_NE(dynamic_cast<SentencePieceTokenizer*>(sp.get()), nullptr);
  auto bytes = load_tokenizer((dir_ / "plain").string(), 512, 256, 257);
  EXPECT_NE(dynamic_cast<ByteTokenizer*>(bytes.get()), nullptr);
  EXPECT_THROW(load_tokenizer((dir_ / "missing").string(), 512, std::nullopt, std::nullopt),
               InvalidArgument);
}

TEST_F(SentencePieceTest, EncodeDecodeRoundTripsAndUsesMultiCharacterPieces) {
  auto tok = load_tokenizer((dir_ / "bpe").string(), 128, std::nullopt, std::nullopt);
  auto* sp = dynamic_cast<SentencePieceTokenizer*>(tok.get());
  ASSERT_NE(sp, nullptr);
  EXPECT_LE(sp->piece_count(), 128);
  EXPECT_GT(sp->piece_count(), 40);
  for (const std::string text : {"the quick brown fox", "hello pages", "caf\xC3\xA9 \xE4\xB8\x96",
                                 "tokens are shared in the next step"}) {
    const std::vector<TokenId> ids = tok->encode(text);
    EXPECT_LT(ids.size(), text.size()) << text;  // merges happened
    for (TokenId id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, sp->piece_count());
    }
    EXPECT_NE(ids.front(), tok->bos_token_id()) << "encode must not add BOS";
    EXPECT_EQ(tok->decode(ids), text);
  }
}

TEST_F(SentencePieceTest, BosAndEosComeFromTheModelUnlessGiven) {
  auto from_model = load_tokenizer((dir_ / "bpe").string(), 128, std::nullopt, std::nullopt);
  EXPECT_EQ(from_model->bos_token_id(), 1);  // the trainer's default ids
  EXPECT_EQ(from_model->eos_token_id(), 2);
  auto given = load_tokenizer((dir_ / "bpe").string(), 128, 120, 121);
  EXPECT_EQ(given->bos_token_id(), 120);
  EXPECT_EQ(given->eos_token_id(), 121);
  EXPECT_THROW(load_tokenizer((dir_ / "bpe").string(), 128, 128, std::nullopt), InvalidArgument);
}

TEST_F(SentencePieceTest, BosEosAndPaddingIdsDecodeToNothing) {
  auto tok = load_tokenizer((dir_ / "bpe").string(), 128, std::nullopt, std::nullopt);
  const int32_t pieces = dynamic_cast<SentencePieceTokenizer&>(*tok).piece_count();
  std::vector<TokenId> ids = tok->encode("hello world");
  const std::string plain = tok->decode(ids);
  ids.insert(ids.begin(), *tok->bos_token_id());
  ids.push_back(pieces);  // an embedding row without a piece
  ids.push_back(127);
  ids.push_back(*tok->eos_token_id());
  EXPECT_EQ(tok->decode(ids), plain);
  EXPECT_THROW(tok->decode(std::vector<TokenId>{128}), OutOfRange);
}

TEST_F(SentencePieceTest, MorePiecesThanTheModelVocabIsRejectedNamingBoth) {
  const auto path = (dir_ / "bpe" / "tokenizer.model").string();
  const int32_t pieces =
      SentencePieceTokenizer(path, 1000, std::nullopt, std::nullopt).piece_count();
  EXPECT_NO_THROW(SentencePieceTokenizer(path, pieces, std::nullopt, std::nullopt));
  try {
    load_tokenizer((dir_ / "bpe").string(), pieces - 1, std::nullopt, std::nullopt);
    FAIL() << "vocab_size " << pieces - 1 << " accepted";
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(std::to_string(pieces)), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(pieces - 1)), std::string::npos) << msg;
  }
}

TEST_F(SentencePieceTest, AnUnreadableModelFileIsRejectedNamingThePath) {
  const fs::path bad = dir_ / "bad";
  fs::create_directories(bad);
  std::ofstream(bad / "tokenizer.model") << "not a protobuf";
  try {
    load_tokenizer(bad.string(), 128, std::nullopt, std::nullopt);
    FAIL() << "garbage tokenizer.model accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
}

TEST_F(SentencePieceTest, StreamKeepsWordSpacesLikeDecode) {
  auto tok = load_tokenizer((dir_ / "bpe").string(), 128, std::nullopt, std::nullopt);
  const std::vector<TokenId> ids = tok->encode("the engine streams tokens back to the client");
  ASSERT_GT(ids.size(), 5u);
  EXPECT_EQ(stream_all(*tok, ids), tok->decode(ids));
}

TEST_F(SentencePieceTest, ByteFallbackPiecesOfAnUnseenCharacterStreamAsOneCharacter) {
  auto tok = load_tokenizer((dir_ / "bytes").string(), 400, std::nullopt, std::nullopt);
  const std::string text = "hello \xF0\x9F\x99\x82 world";  // the emoji is not in the corpus
  // Byte fallback: the emoji is four byte pieces, each of which alone decodes to U+FFFD.
  EXPECT_GE(tok->encode("\xF0\x9F\x99\x82").size(), 4u);
  const std::vector<TokenId> ids = tok->encode(text);
  EXPECT_EQ(tok->decode(ids), text);
  std::vector<std::string> pieces;
  EXPECT_EQ(stream_all(*tok, ids, &pieces), text);
  bool emoji_whole = false;
  for (const std::string& p : pieces) {
    EXPECT_EQ(p.find("\xEF\xBF\xBD"), std::string::npos) << "a partial character was given out";
    if (p.find("\xF0\x9F\x99\x82") != std::string::npos) emoji_whole = true;
  }
  EXPECT_TRUE(emoji_whole);
}

}  // namespace
}  // namespace pagedkv
