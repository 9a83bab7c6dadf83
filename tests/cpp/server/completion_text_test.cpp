#include "pagedkv/server/completion_text.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pagedkv/model/byte_tokenizer.h"

namespace pagedkv {
namespace {

std::vector<TokenId> bytes(const std::string& s) {
  return std::vector<TokenId>(s.begin(), s.end());
}

// Pushes `s` one byte-token at a time; returns the concatenated deltas.
std::string feed(CompletionText& t, const std::string& s, bool finish_at_end) {
  std::string out;
  const std::vector<TokenId> ids = bytes(s);
  for (size_t i = 0; i < ids.size(); ++i) {
    const TokenId one[] = {ids[i]};
    out += t.push(one, {}, finish_at_end && i + 1 == ids.size()).text;
    if (t.stopped()) break;
  }
  return out;
}

TEST(CompletionText, WithoutStopStringsTheTextIsTheDecode) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {}, false);
  EXPECT_EQ(feed(t, "hello world", true), "hello world");
  EXPECT_EQ(t.num_tokens(), 11);
}

TEST(CompletionText, TextIsCutBeforeTheStopStringAndStops) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {"STOP"}, false);
  EXPECT_EQ(feed(t, "abc STOP def", false), "abc ");
  EXPECT_TRUE(t.stopped());
  const TokenId more[] = {'x'};
  EXPECT_TRUE(t.push(more, {}, false).text.empty());
}

TEST(CompletionText, APossibleStopPrefixIsHeldBackUntilResolved) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {"abc"}, false);
  const TokenId a[] = {'a'}, b[] = {'b'}, x[] = {'x'};
  EXPECT_EQ(t.push(a, {}, false).text, "");
  EXPECT_EQ(t.push(b, {}, false).text, "");
  EXPECT_EQ(t.push(x, {}, false).text, "abx");  // "abx" can no longer become "abc"
  EXPECT_FALSE(t.stopped());
}

TEST(CompletionText, HeldBackTextIsReleasedAtTheEnd) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {"abc"}, false);
  EXPECT_EQ(feed(t, "xab", true), "xab");
}

TEST(CompletionText, StopStringSpanningOneMultiTokenPushIsFound) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {"\n\n"}, false);
  const std::vector<TokenId> ids = bytes("one\n\ntwo");
  CompletionText::Delta d = t.push(ids, {}, false);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(d.text, "one");
}

TEST(CompletionText, SkippedLastTokenLeavesNoText) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {}, false);
  const std::vector<TokenId> ids = bytes("ab;");
  EXPECT_EQ(t.push(ids, {}, true, /*skip_last_text=*/true).text, "ab");
  EXPECT_EQ(t.num_tokens(), 3);
}

TEST(CompletionText, LogprobEntriesHaveTextOffsetsAndTheSampledLogprob) {
  ByteTokenizer tok(384, 256, 257);
  CompletionText t(tok, {}, true);
  const std::vector<TokenId> ids = bytes("hi");
  const std::vector<std::vector<TokenLogprob>> lps = {{{'h', -0.5f}, {'x', -1.0f}},
                                                      {{'o', -0.2f}, {'i', -0.7f}}};
  CompletionText::Delta d = t.push(ids, lps, true);
  ASSERT_EQ(d.logprobs.size(), 2u);
  EXPECT_EQ(d.logprobs[0].token, "h");
  EXPECT_FLOAT_EQ(d.logprobs[0].logprob, -0.5f);
  EXPECT_EQ(d.logprobs[0].text_offset, 0);
  EXPECT_EQ(d.logprobs[1].token, "i");
  EXPECT_FLOAT_EQ(d.logprobs[1].logprob, -0.7f);
  EXPECT_EQ(d.logprobs[1].text_offset, 1);
  ASSERT_EQ(d.logprobs[1].top.size(), 2u);
  EXPECT_EQ(d.logprobs[1].top[0].first, "o");
}

}  // namespace
}  // namespace pagedkv
