#include "pagedkv/server/completion_request.h"

#include <gtest/gtest.h>

#include <string>

#include "pagedkv/model/byte_tokenizer.h"

namespace pagedkv {
namespace {

class CompletionRequestTest : public ::testing::Test {
 protected:
  CompletionRequestTest() : tokenizer_(384, 256, 257) {
    limits_.served_model_name = "tiny";
    limits_.max_model_len = 64;
    limits_.vocab_size = 384;
    limits_.tokenizer = &tokenizer_;
  }

  ParsedCompletion parse(const std::string& body) {
    return parse_completion_request(body, limits_);
  }
  // The parse fails with a 400 whose param is `field`.
  void expect_error(const std::string& body, const std::string& field) {
    SCOPED_TRACE(body);
    ParsedCompletion p = parse(body);
    ASSERT_FALSE(p.request.has_value());
    ASSERT_TRUE(p.error.has_value());
    EXPECT_EQ(p.error->status, 400);
    EXPECT_EQ(p.error->type, "invalid_request_error");
    ASSERT_TRUE(p.error->param.has_value());
    EXPECT_EQ(*p.error->param, field);
    EXPECT_NE(p.error->message.find(field), std::string::npos) << p.error->message;
  }

  ByteTokenizer tokenizer_;
  CompletionLimits limits_;
};

TEST_F(CompletionRequestTest, StringPromptIsEncodedAndDefaultsApply) {
  ParsedCompletion p = parse(R"({"prompt": "Hi!"})");
  ASSERT_TRUE(p.request.has_value());
  EXPECT_FALSE(p.error.has_value());
  EXPECT_EQ(p.request->model, "tiny");
  EXPECT_EQ(p.request->prompt_token_ids, (std::vector<TokenId>{'H', 'i', '!'}));
  EXPECT_EQ(p.request->params.max_tokens, 16);
  EXPECT_FALSE(p.request->stream);
  EXPECT_FALSE(p.request->params.logprobs.has_value());
}

TEST_F(CompletionRequestTest, EveryFieldIsRead) {
  ParsedCompletion p = parse(R"({"model": "tiny", "prompt": [[5, 6, 7]], "max_tokens": 9,
      "temperature": 0.5, "top_p": 0.9, "top_k": 4, "seed": 11, "stop": ["ab", "c"],
      "stop_token_ids": [3], "ignore_eos": true, "min_tokens": 2, "logprobs": 3,
      "stream": true, "stream_options": {"include_usage": true}, "priority": -2,
      "cache_salt": "tenant", "user": "u", "return_token_ids": true, "n": 1, "echo": false})");
  ASSERT_TRUE(p.request.has_value()) << p.error->message;
  const CompletionRequest& r = *p.request;
  EXPECT_EQ(r.prompt_token_ids, (std::vector<TokenId>{5, 6, 7}));
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 4);
  EXPECT_EQ(r.params.seed, 11);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"ab", "c"}));
  EXPECT_EQ(r.params.stop_token_ids, (std::vector<TokenId>{3}));
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_EQ(r.params.min_tokens, 2);
  EXPECT_EQ(r.params.logprobs, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.priority, -2);
  EXPECT_EQ(r.cache_salt, "tenant");
  EXPECT_TRUE(r.return_token_ids);
}

TEST_F(CompletionRequestTest, NullMeansAbsent) {
  ParsedCompletion p = parse(R"({"prompt": "x", "max_tokens": null, "stop": null, "seed": null})");
  ASSERT_TRUE(p.request.has_value());
  EXPECT_EQ(p.request->params.max_tokens, 16);
  EXPECT_TRUE(p.request->stop.empty());
  EXPECT_FALSE(p.request->params.seed.has_value());
}

TEST_F(CompletionRequestTest, MalformedBodiesHaveNoParam) {
  for (const char* body : {"{", "[1, 2]", "\"prompt\"", ""}) {
    ParsedCompletion p = parse(body);
    ASSERT_TRUE(p.error.has_value()) << body;
    EXPECT_EQ(p.error->status, 400);
    EXPECT_FALSE(p.error->param.has_value());
  }
}

TEST_F(CompletionRequestTest, EveryBadFieldIsNamed) {
  expect_error(R"({"prompt": "x", "model": "other"})", "model");
  expect_error(R"({"prompt": "x", "model": 3})", "model");
  expect_error(R"({})", "prompt");
  expect_error(R"({"prompt": 5})", "prompt");
  expect_error(R"({"prompt": ""})", "prompt");
  expect_error(R"({"prompt": ["a", "b"]})", "prompt");
  expect_error(R"({"prompt": [1, 384]})", "prompt");
  expect_error(R"({"prompt": [1, -1]})", "prompt");
  expect_error(R"({"prompt": [1, "a"]})", "prompt");
  expect_error(R"({"prompt": [1, 2.5]})", "prompt");
  expect_error(R"({"prompt": ")" + std::string(64, 'a') + R"("})", "prompt");
  expect_error(R"({"prompt": "x", "max_tokens": 0})", "max_tokens");
  expect_error(R"({"prompt": "x", "max_tokens": "5"})", "max_tokens");
  expect_error(R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens");
  expect_error(R"({"prompt": "x", "max_tokens": 64})", "max_tokens");
  expect_error(R"({"prompt": "x", "temperature": -1})", "temperature");
  expect_error(R"({"prompt": "x", "temperature": "hot"})", "temperature");
  expect_error(R"({"prompt": "x", "top_p": 0})", "top_p");
  expect_error(R"({"prompt": "x", "top_p": 1.5})", "top_p");
  expect_error(R"({"prompt": "x", "top_k": -2})", "top_k");
  expect_error(R"({"prompt": "x", "seed": "s"})", "seed");
  expect_error(R"({"prompt": "x", "stop": 3})", "stop");
  expect_error(R"({"prompt": "x", "stop": [""]})", "stop");
  expect_error(R"({"prompt": "x", "stop": ["a", 1]})", "stop");
  expect_error(R"({"prompt": "x", "stop_token_ids": 3})", "stop_token_ids");
  expect_error(R"({"prompt": "x", "stop_token_ids": [400]})", "stop_token_ids");
  expect_error(R"({"prompt": "x", "ignore_eos": 1})", "ignore_eos");
  expect_error(R"({"prompt": "x", "min_tokens": 17})", "min_tokens");
  expect_error(R"({"prompt": "x", "logprobs": 21})", "logprobs");
  expect_error(R"({"prompt": "x", "logprobs": true})", "logprobs");
  expect_error(R"({"prompt": "x", "stream": "yes"})", "stream");
  expect_error(R"({"prompt": "x", "stream_options": 1})", "stream_options");
  expect_error(R"({"prompt": "x", "stream_options": {"include_usage": 1}})",
               "stream_options.include_usage");
  expect_error(R"({"prompt": "x", "priority": 1e3})", "priority");
  expect_error(R"({"prompt": "x", "cache_salt": 5})", "cache_salt");
  expect_error(R"({"prompt": "x", "user": 5})", "user");
  expect_error(R"({"prompt": "x", "return_token_ids": "no"})", "return_token_ids");
  expect_error(R"({"prompt": "x", "n": 2})", "n");
  expect_error(R"({"prompt": "x", "echo": true})", "echo");
  expect_error(R"({"prompt": "x", "best_of": 3})", "best_of");
  expect_error(R"({"prompt": "x", "suffix": "s"})", "suffix");
}

TEST_F(CompletionRequestTest, UnknownModelHasItsCode) {
  ParsedCompletion p = parse(R"({"prompt": "x", "model": "gpt-4"})");
  ASSERT_TRUE(p.error.has_value());
  EXPECT_EQ(p.error->code, "model_not_found");
  EXPECT_NE(p.error->message.find("gpt-4"), std::string::npos);
}

TEST_F(CompletionRequestTest, ErrorObjectHasOpenAIShape) {
  const nlohmann::json j = ApiError::invalid("max_tokens", "bad").to_json();
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST_F(CompletionRequestTest, PromptPlusMaxTokensMayFillTheContextExactly) {
  // 4 prompt tokens + 60 = max_model_len 64: accepted; 61 is one too many.
  EXPECT_TRUE(parse(R"({"prompt": "abcd", "max_tokens": 60})").request.has_value());
  expect_error(R"({"prompt": "abcd", "max_tokens": 61})", "max_tokens");
}

}  // namespace
}  // namespace pagedkv
