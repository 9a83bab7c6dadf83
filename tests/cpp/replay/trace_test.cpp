#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/replay/trace.h"

namespace pagedkv {
namespace {

namespace fs = std::filesystem;

// Runs `fn`, expects InvalidArgument, and returns its message.
template <typename Fn>
std::string invalid_argument_message(Fn&& fn) {
  try {
    fn();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InvalidArgument thrown";
  return {};
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("pagedkv_trace_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

constexpr const char* kMooncakeSample =
    R"({"timestamp": 2000, "input_length": 1000, "output_length": 10, "hash_ids": [0, 1]}
{"timestamp": 0, "input_length": 512, "output_length": 3, "hash_ids": [0]}

{"timestamp": 2000, "input_length": 1100, "output_length": 0, "hash_ids": [0, 2, 3]}
{"timestamp": 1500, "input_length": 13, "output_length": 1, "hash_ids": [4]}
)";

constexpr const char* kKvctSample = R"({"id": "s1", "block_size": 64, "hash_id_scope": "local",
  "requests": [
    {"t": 0.0, "in": 130, "out": 5, "hash_ids": [1, 2], "type": "n"},
    {"t": 9.5, "in": 128, "out": 7, "hash_ids": [1, 2]},
    {"t": 3.0, "in": 60, "out": 1, "hash_ids": []}
  ]})";

TEST(MooncakeTrace, ParsesLinesIntoSecondsLengthsAndOneKeyPerBlock) {
  const Trace t = parse_mooncake(kMooncakeSample, "sample.jsonl");
  EXPECT_EQ(t.block_size, kMooncakeBlockSize);
  ASSERT_EQ(t.requests.size(), 4u);
  EXPECT_NO_THROW(t.validate());
  // Ordered by timestamp (ms -> s); the two 2000 ms requests keep file order.
  EXPECT_DOUBLE_EQ(t.requests[0].timestamp, 0.0);
  EXPECT_EQ(t.requests[0].input_length, 512);
  EXPECT_DOUBLE_EQ(t.requests[1].timestamp, 1.5);
  EXPECT_EQ(t.requests[1].input_length, 13);
  EXPECT_DOUBLE_EQ(t.requests[2].timestamp, 2.0);
  EXPECT_EQ(t.requests[2].input_length, 1000);
  EXPECT_EQ(t.requests[2].output_length, 10);
  EXPECT_EQ(t.requests[3].input_length, 1100);
  EXPECT_EQ(t.requests[3].block_keys.size(), 3u);
  // Identical hash ids map to identical keys, different ids to different keys.
  EXPECT_EQ(t.requests[0].block_keys[0], t.requests[2].block_keys[0]);
  EXPECT_EQ(t.requests[0].block_keys[0], t.requests[3].block_keys[0]);
  EXPECT_NE(t.requests[2].block_keys[1], t.requests[3].block_keys[1]);
  EXPECT_EQ(t.requests[0].block_keys[0], scoped_block_key(0, 0));
  EXPECT_EQ(t.num_tokens(), 512 + 13 + 1000 + 1100);
  EXPECT_EQ(t.max_input_length(), 1100);
}

TEST(MooncakeTrace, AcceptsFractionalTimestampsAndIgnoresUnknownFields) {
  const Trace t = parse_mooncake(
      R"({"timestamp": 1.5, "input_length": 1, "output_length": 0, "hash_ids": [7], "x": "y"})",
      "one.jsonl");
  ASSERT_EQ(t.requests.size(), 1u);
  EXPECT_DOUBLE_EQ(t.requests[0].timestamp, 0.0015);
}

TEST(MooncakeTrace, ErrorsNameTheFileLineAndField) {
  const std::string good =
      R"({"timestamp": 0, "input_length": 512, "output_length": 3, "hash_ids": [0]})";
  struct Case {
    std::string line;
    std::string expect;  // substring of the message after "f.jsonl:2: "
  };
  const std::vector<Case> cases = {
      {R"({"timestamp": 0, "output_length": 3, "hash_ids": [0]})", "missing field 'input_length'"},
      {R"({"timestamp": 0, "input_length": 0, "output_length": 3, "hash_ids": []})",
       "field 'input_length'"},
      {R"({"timestamp": 0, "input_length": 12.5, "output_length": 3, "hash_ids": [0]})",
       "field 'input_length': expected an integer"},
      {R"({"timestamp": -1, "input_length": 5, "output_length": 3, "hash_ids": [0]})",
       "field 'timestamp'"},
      {R"({"timestamp": 0, "input_length": 5, "output_length": -3, "hash_ids": [0]})",
       "field 'output_length'"},
      {R"({"timestamp": 0, "input_length": 513, "output_length": 3, "hash_ids": [0]})",
       "field 'hash_ids': has 1 ids, expected 2"},
      {R"({"timestamp": 0, "input_length": 5, "output_length": 3, "hash_ids": [-4]})",
       "field 'hash_ids'[0]: expected a non-negative integer"},
      {R"({"timestamp": 0, "input_length": 5, "output_length": 3, "hash_ids": "0"})",
       "field 'hash_ids': expected an array"},
      {R"({"timestamp": 0, "input_length": 5,)", "invalid JSON"},
      {R"([1, 2])", "expected a JSON object"},
  };
  for (const auto& c : cases) {
    const std::string msg =
        invalid_argument_message([&] { parse_mooncake(good + "\n" + c.line + "\n", "f.jsonl"); });
    EXPECT_NE(msg.find("f.jsonl:2: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
}

TEST(KvCacheTesterTrace, GivesTheTailOfEachPromptAPrivateKey) {
  const Trace t = parse_kv_cache_tester(kKvctSample, "s1.json");
  EXPECT_EQ(t.block_size, 64);
  ASSERT_EQ(t.requests.size(), 3u);
  EXPECT_NO_THROW(t.validate());
  const TraceRequest& first = t.requests[0];   // t=0, 130 tokens: 2 full blocks + 2-token tail
  const TraceRequest& third = t.requests[1];   // t=3, 60 tokens: tail only
  const TraceRequest& second = t.requests[2];  // t=9.5, 128 tokens: 2 full blocks, no tail
  EXPECT_EQ(first.input_length, 130);
  EXPECT_EQ(third.input_length, 60);
  EXPECT_EQ(second.input_length, 128);
  ASSERT_EQ(first.block_keys.size(), 3u);
  ASSERT_EQ(second.block_keys.size(), 2u);
  ASSERT_EQ(third.block_keys.size(), 1u);
  EXPECT_EQ(first.block_keys[0], second.block_keys[0]);
  EXPECT_EQ(first.block_keys[1], second.block_keys[1]);
  // Tails: never a hash id's key, never another request's tail.
  std::set<uint64_t> keys = {first.block_keys[0], first.block_keys[1]};
  EXPECT_FALSE(keys.count(first.block_keys[2]));
  EXPECT_NE(first.block_keys[2], third.block_keys[0]);
  EXPECT_EQ(first.block_keys[2], unique_tail_key(0, 0));
  EXPECT_EQ(third.block_keys[0], unique_tail_key(0, 2));
}

TEST(KvCacheTesterTrace, HashIdsAreScopedByFileUnlessDeclaredGlobal) {
  const Trace a = parse_kv_cache_tester(kKvctSample, "a.json", 0);
  const Trace a_again = parse_kv_cache_tester(kKvctSample, "a.json", 0);
  const Trace b = parse_kv_cache_tester(kKvctSample, "b.json", 1);
  EXPECT_EQ(a.requests[0].block_keys, a_again.requests[0].block_keys);
  for (size_t i = 0; i < a.requests[0].block_keys.size(); ++i) {
    EXPECT_NE(a.requests[0].block_keys[i], b.requests[0].block_keys[i]);
  }
  std::string global = kKvctSample;
  global.replace(global.find("\"local\""), 7, "\"global\"");
  const Trace g0 = parse_kv_cache_tester(global, "g0.json", 0);
  const Trace g1 = parse_kv_cache_tester(global, "g1.json", 1);
  EXPECT_EQ(g0.requests[0].block_keys[0], g1.requests[0].block_keys[0]);
  EXPECT_EQ(g0.requests[0].block_keys[1], g1.requests[0].block_keys[1]);
  // Tails stay private even in the global scope.
  EXPECT_NE(g0.requests[0].block_keys[2], g1.requests[0].block_keys[2]);
}

TEST(KvCacheTesterTrace, AcceptsAnArrayOfSessions) {
  const std::string text = std::string("[") + kKvctSample + ", " + kKvctSample + "]";
  const Trace t = parse_kv_cache_tester(text, "many.json");
  ASSERT_EQ(t.requests.size(), 6u);
  // Both sessions are in one file, so they share hash ids; tails stay distinct.
  EXPECT_EQ(t.requests[0].block_keys[0], t.requests[1].block_keys[0]);
  EXPECT_NE(t.requests[0].block_keys.back(), t.requests[1].block_keys.back());
}

TEST(KvCacheTesterTrace, ErrorsNameTheFileRequestAndField) {
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {R"({"block_size": 64, "requests": [{"t": 0, "in": 64, "out": 1, "hash_ids": [1]},
          {"t": 1, "out": 1, "hash_ids": []}]})",
       "f.json: requests[1]: missing field 'in'"},
      {R"({"block_size": 64, "requests": [{"t": 0, "in": 129, "out": 1, "hash_ids": [1]}]})",
       "f.json: requests[0]: field 'hash_ids': has 1 ids, expected 2"},
      {R"({"block_size": 0, "requests": []})", "f.json: field 'block_size'"},
      {R"({"requests": []})", "f.json: missing field 'block_size'"},
      {R"({"block_size": 64, "hash_id_scope": "world", "requests": []})", "field 'hash_id_scope'"},
      {R"({"block_size": 64, "requests": {}})", "field 'requests': expected an array"},
      {R"({"block_size": 64, "requests": [{"t": "x", "in": 1, "out": 1, "hash_ids": []}]})",
       "requests[0]: field 't': expected a number"},
      {"{\"block_size\": 64,\n \"requests\": [}", "f.json:2:"},
      {R"([{"block_size": 64, "requests": []}, {"block_size": 32, "requests": []}])",
       "sessions[1]: field 'block_size' is 32, but an earlier session uses 64"},
  };
  for (const auto& c : cases) {
    const std::string msg =
        invalid_argument_message([&] { parse_kv_cache_tester(c.text, "f.json"); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
}

TEST(TraceFormat, NamesRoundTripAndExtensionsPickTheFormat) {
  EXPECT_EQ(parse_trace_format("mooncake"), TraceFormat::kMooncake);
  EXPECT_EQ(parse_trace_format("kv-cache-tester"), TraceFormat::kKvCacheTester);
  EXPECT_EQ(trace_format_name(TraceFormat::kKvCacheTester), "kv-cache-tester");
  EXPECT_NE(invalid_argument_message([] { parse_trace_format("csv"); }).find("'csv'"),
            std::string::npos);
  EXPECT_EQ(trace_format_from_path("a/b.jsonl"), TraceFormat::kMooncake);
  EXPECT_EQ(trace_format_from_path("a/b.json"), TraceFormat::kKvCacheTester);
  EXPECT_EQ(trace_format_from_path("a/b.txt"), TraceFormat::kMooncake);
  TempDir dir;
  EXPECT_EQ(trace_format_from_path(dir.path()), TraceFormat::kKvCacheTester);
}

TEST(LoadTrace, MergesFilesWithOneScopeEachAndStableTimestampOrder) {
  TempDir dir;
  const std::string s1 = dir.write("s1.json", kKvctSample);
  const std::string s2 = dir.write("s2.json", kKvctSample);
  const Trace one = load_trace(s1, TraceFormat::kKvCacheTester);
  ASSERT_EQ(one.requests.size(), 3u);
  const std::vector<std::string> paths = {s1, s2};
  const Trace both = load_traces(paths, TraceFormat::kKvCacheTester);
  ASSERT_EQ(both.requests.size(), 6u);
  // Ties (same t in both files) keep file order: s1's request first.
  EXPECT_EQ(both.requests[0].block_keys[0], one.requests[0].block_keys[0]);
  EXPECT_DOUBLE_EQ(both.requests[1].timestamp, 0.0);
  EXPECT_NE(both.requests[1].block_keys[0], both.requests[0].block_keys[0]);
  // A directory loads its *.json files in name order, like the explicit list.
  dir.write("notes.txt", "not a trace");
  const Trace from_dir = load_trace(dir.path(), TraceFormat::kKvCacheTester);
  ASSERT_EQ(from_dir.requests.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(from_dir.requests[i].block_keys, both.requests[i].block_keys);
  }
}

TEST(LoadTrace, ReportsUnreadableFilesDirectoriesAndMixedBlockSizes) {
  TempDir dir;
  EXPECT_NE(invalid_argument_message([&] {
              load_trace(dir.path() + "/missing.jsonl", TraceFormat::kMooncake);
            }).find("missing.jsonl"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] {
              load_trace(dir.path(), TraceFormat::kMooncake);
            }).find("is a directory"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] {
              load_trace(dir.path(), TraceFormat::kKvCacheTester);
            }).find("holds no *.json"),
            std::string::npos);
  const std::string bad = dir.write("bad.jsonl", "{\"timestamp\": 0}\n");
  EXPECT_NE(invalid_argument_message([&] {
              load_trace(bad, TraceFormat::kMooncake);
            }).find("bad.jsonl:1: missing field 'input_length'"),
            std::string::npos);
  const std::string a = dir.write("a.json", kKvctSample);
  const std::string b = dir.write(
      "b.json",
      R"({"block_size": 32, "requests": [{"t": 0, "in": 32, "out": 1, "hash_ids": [1]}]})");
  const std::vector<std::string> paths = {a, b};
  EXPECT_NE(invalid_argument_message([&] {
              load_traces(paths, TraceFormat::kKvCacheTester);
            }).find("block size 32 differs from 64"),
            std::string::npos);
  EXPECT_THROW(load_traces(std::vector<std::string>{}, TraceFormat::kMooncake), InvalidArgument);
}

TEST(TraceValidate, RejectsBrokenRequestsNamingTheIndex) {
  Trace t;
  t.block_size = 4;
  t.requests.push_back(
      {.timestamp = 1.0, .input_length = 5, .output_length = 0, .block_keys = {1, 2}});
  EXPECT_NO_THROW(t.validate());
  Trace wrong_keys = t;
  wrong_keys.requests[0].block_keys.pop_back();
  EXPECT_NE(invalid_argument_message([&] { wrong_keys.validate(); }).find("trace request 0"),
            std::string::npos);
  Trace unordered = t;
  unordered.requests.push_back(t.requests[0]);
  unordered.requests[1].timestamp = 0.5;
  EXPECT_NE(invalid_argument_message([&] { unordered.validate(); }).find("trace request 1"),
            std::string::npos);
  Trace no_block = t;
  no_block.block_size = 0;
  EXPECT_THROW(no_block.validate(), InvalidArgument);
}

// The real traces of the shared data folder (ctest sets PAGEDKV_SHARED_DIR).
std::string shared_dir() {
  const char* dir = std::getenv("PAGEDKV_SHARED_DIR");
  return dir ? dir : "";
}

TEST(RealTraces, MooncakeConversationTraceMatchesItsReadme) {
  if (shared_dir().empty()) GTEST_FAIL() << "PAGEDKV_SHARED_DIR is not set";
  const Trace t = load_trace(shared_dir() + "/data/traces/mooncake/conversation_trace.jsonl",
                             TraceFormat::kMooncake);
  EXPECT_EQ(t.requests.size(), 12031u);
  EXPECT_EQ(t.num_tokens(), 144793823);  // ~145 M tokens, avg input 12,035
  size_t blocks = 0;
  std::set<uint64_t> unique;
  for (const auto& r : t.requests) {
    blocks += r.block_keys.size();
    unique.insert(r.block_keys.begin(), r.block_keys.end());
  }
  EXPECT_EQ(blocks, 288500u);
  EXPECT_EQ(unique.size(), 182790u);
  EXPECT_NEAR(t.requests.back().timestamp, 3537.0, 1.0);
}

TEST(RealTraces, KvCacheTesterDirectoryLoadsEverySession) {
  if (shared_dir().empty()) GTEST_FAIL() << "PAGEDKV_SHARED_DIR is not set";
  const Trace t =
      load_trace(shared_dir() + "/data/traces/kv-cache-tester", TraceFormat::kKvCacheTester);
  EXPECT_EQ(t.block_size, 64);
  EXPECT_EQ(t.requests.size(), 41u + 33u + 12u + 14u + 3u);
  EXPECT_NO_THROW(t.validate());
}

}  // namespace
}  // namespace pagedkv
