#include "pagedkv/replay/trace.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pagedkv/common/errors.h"
#include "pagedkv/common/splitmix.h"

namespace pagedkv {

namespace {

using nlohmann::json;

// Scope shared by every kv-cache-tester file that declares "hash_id_scope": "global".
constexpr uint64_t kGlobalScope = ~uint64_t{0};

// Domain tags keep the two kinds of keys apart: no hash id ever maps to a tail key.
constexpr uint64_t kHashIdDomain = 1;
constexpr uint64_t kTailDomain = 2;

uint64_t domain_key(uint64_t domain, uint64_t scope, uint64_t value) {
  const uint64_t words[3] = {domain, scope, value};
  return XXH3_64bits(words, sizeof(words));
}

// The stream seed of a block; the constant keeps key 0 away from the fixed point splitmix64_mix(0)
// = 0.
inline uint64_t block_seed(uint64_t key) { return splitmix64_mix(key ^ 0x5851F42D4C957F2Dull); }

// Maps 32 random bits onto [0, kSyntheticVocabSize) by multiply-shift (no division).
inline TokenId to_vocab(uint64_t r) {
  return static_cast<TokenId>(((r >> 32) * static_cast<uint64_t>(kSyntheticVocabSize)) >> 32);
}

std::string line_col(std::string_view text, size_t byte) {
  byte = std::min(byte, text.size());
  size_t line = 1, col = 1;
  for (size_t i = 0; i < byte; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return fmt::format("{}:{}", line, col);
}

// nlohmann's message without its own "[json.exception...] at line 1, column 5:" prefix, whose
// position is relative to what it parsed (one line of a JSON-lines file).
std::string json_reason(const json::parse_error& e) {
  const std::string what = e.what();
  const size_t col = what.find("column ");
  const size_t sep = col == std::string::npos ? col : what.find(": ", col);
  return sep == std::string::npos ? what : what.substr(sep + 2);
}

// Field readers: `where` prefixes every message ("file:12: field 'input_length'").
const json& require(const json& obj, const char* field, const std::string& where) {
  auto it = obj.find(field);
  PAGEDKV_CHECK_ARG(it != obj.end(), "{}: missing field '{}'", where, field);
  return *it;
}

int64_t read_int(const json& v, const std::string& where, int64_t lo, int64_t hi) {
  PAGEDKV_CHECK_ARG(v.is_number_integer(), "{}: expected an integer, got {}", where, v.dump());
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    PAGEDKV_CHECK_ARG(u <= static_cast<uint64_t>(hi) && static_cast<int64_t>(u) >= lo,
                      "{}: {} is outside [{}, {}]", where, u, lo, hi);
    return static_cast<int64_t>(u);
  }
  const int64_t x = v.get<int64_t>();
  PAGEDKV_CHECK_ARG(x >= lo && x <= hi, "{}: {} is outside [{}, {}]", where, x, lo, hi);
  return x;
}

double read_time(const json& v, const std::string& where) {
  PAGEDKV_CHECK_ARG(v.is_number(), "{}: expected a number, got {}", where, v.dump());
  const double t = v.get<double>();
  PAGEDKV_CHECK_ARG(std::isfinite(t) && t >= 0.0, "{}: expected a finite time >= 0, got {}", where,
                    v.dump());
  return t;
}

void read_hash_ids(const json& v, const std::string& where, size_t expected, uint64_t scope,
                   std::vector<uint64_t>& keys) {
  PAGEDKV_CHECK_ARG(v.is_array(), "{}: expected an array, got {}", where,
                    std::string(v.type_name()));
  PAGEDKV_CHECK_ARG(v.size() == expected,
                    "{}: has {} ids, expected {} (one per block of the prompt)", where, v.size(),
                    expected);
  keys.reserve(keys.size() + v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& id = v[i];
    PAGEDKV_CHECK_ARG(id.is_number_unsigned() || (id.is_number_integer() && id.get<int64_t>() >= 0),
                      "{}[{}]: expected a non-negative integer, got {}", where, i, id.dump());
    keys.push_back(scoped_block_key(scope, id.get<uint64_t>()));
  }
}

constexpr int64_t kMaxLength = std::numeric_limits<int32_t>::max();

TraceRequest parse_mooncake_record(const json& rec, const std::string& where, uint64_t scope) {
  PAGEDKV_CHECK_ARG(rec.is_object(), "{}: expected a JSON object, got {}", where,
                    std::string(rec.type_name()));
  TraceRequest r;
  r.timestamp = read_time(require(rec, "timestamp", where), where + ": field 'timestamp'") / 1000.0;
  r.input_length = static_cast<int32_t>(read_int(require(rec, "input_length", where),
                                                 where + ": field 'input_length'", 1, kMaxLength));
  r.output_length = static_cast<int32_t>(read_int(
      require(rec, "output_length", where), where + ": field 'output_length'", 0, kMaxLength));
  read_hash_ids(require(rec, "hash_ids", where), where + ": field 'hash_ids'",
                static_cast<size_t>(cdiv<int64_t>(r.input_length, kMooncakeBlockSize)), scope,
                r.block_keys);
  return r;
}

void parse_session(const json& session, const std::string& where, uint64_t file_scope,
                   int32_t& block_size, Trace& out) {
  PAGEDKV_CHECK_ARG(session.is_object(), "{}: expected a session object, got {}", where,
                    std::string(session.type_name()));
  const int32_t bs = static_cast<int32_t>(
      read_int(require(session, "block_size", where), where + ": field 'block_size'", 1, 1 << 20));
  PAGEDKV_CHECK_ARG(block_size == 0 || block_size == bs,
                    "{}: field 'block_size' is {}, but an earlier session uses {}", where, bs,
                    block_size);
  block_size = bs;
  uint64_t scope = file_scope;
  if (auto it = session.find("hash_id_scope"); it != session.end()) {
    PAGEDKV_CHECK_ARG(it->is_string() && (*it == "local" || *it == "global"),
                      "{}: field 'hash_id_scope' must be \"local\" or \"global\", got {}", where,
                      it->dump());
    if (*it == "global") scope = kGlobalScope;
  }
  const json& reqs = require(session, "requests", where);
  PAGEDKV_CHECK_ARG(reqs.is_array(), "{}: field 'requests': expected an array, got {}", where,
                    std::string(reqs.type_name()));
  for (size_t i = 0; i < reqs.size(); ++i) {
    const std::string at = fmt::format("{}: requests[{}]", where, i);
    const json& rec = reqs[i];
    PAGEDKV_CHECK_ARG(rec.is_object(), "{}: expected a JSON object, got {}", at,
                      std::string(rec.type_name()));
    TraceRequest r;
    r.timestamp = read_time(require(rec, "t", at), at + ": field 't'");
    r.input_length =
        static_cast<int32_t>(read_int(require(rec, "in", at), at + ": field 'in'", 1, kMaxLength));
    r.output_length = static_cast<int32_t>(
        read_int(require(rec, "out", at), at + ": field 'out'", 0, kMaxLength));
    read_hash_ids(require(rec, "hash_ids", at), at + ": field 'hash_ids'",
                  static_cast<size_t>(r.input_length / bs), scope, r.block_keys);
    // The tail is private to this request: its key comes from its position in the file.
    if (r.input_length % bs != 0) {
      r.block_keys.push_back(unique_tail_key(file_scope, out.requests.size()));
    }
    out.requests.push_back(std::move(r));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PAGEDKV_CHECK_ARG(in.good(), "cannot read trace file '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  PAGEDKV_CHECK_ARG(!in.bad(), "cannot read trace file '{}'", path);
  return std::move(ss).str();
}

std::vector<std::string> expand(const std::string& path, TraceFormat format) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return {path};
  PAGEDKV_CHECK_ARG(format == TraceFormat::kKvCacheTester,
                    "trace path '{}' is a directory; only kv-cache-tester traces may be "
                    "given as a directory of *.json sessions",
                    path);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(entry.path().string());
    }
  }
  PAGEDKV_CHECK_ARG(!ec, "cannot list trace directory '{}': {}", path, ec.message());
  PAGEDKV_CHECK_ARG(!files.empty(), "trace directory '{}' holds no *.json file", path);
  std::sort(files.begin(), files.end());
  return files;
}

void stable_order(Trace& t) {
  std::stable_sort(
      t.requests.begin(), t.requests.end(),
      [](const TraceRequest& a, const TraceRequest& b) { return a.timestamp < b.timestamp; });
}

}  // namespace

std::string_view trace_format_name(TraceFormat format) {
  switch (format) {
    case TraceFormat::kMooncake: return "mooncake";
    case TraceFormat::kKvCacheTester: return "kv-cache-tester";
  }
  return "unknown";
}

TraceFormat parse_trace_format(std::string_view name) {
  if (name == "mooncake") return TraceFormat::kMooncake;
  if (name == "kv-cache-tester") return TraceFormat::kKvCacheTester;
  PAGEDKV_CHECK_ARG(false, "unknown trace format '{}' (expected mooncake or kv-cache-tester)",
                    name);
  return TraceFormat::kMooncake;
}

TraceFormat trace_format_from_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return TraceFormat::kKvCacheTester;
  if (std::filesystem::path(path).extension() == ".json") return TraceFormat::kKvCacheTester;
  return TraceFormat::kMooncake;
}

int64_t Trace::num_tokens() const {
  int64_t n = 0;
  for (const auto& r : requests) n += r.input_length;
  return n;
}

int32_t Trace::max_input_length() const {
  int32_t m = 0;
  for (const auto& r : requests) m = std::max(m, r.input_length);
  return m;
}

void Trace::validate() const {
  PAGEDKV_CHECK_ARG(block_size > 0, "trace block_size must be > 0, got {}", block_size);
  double prev = 0.0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TraceRequest& r = requests[i];
    PAGEDKV_CHECK_ARG(r.input_length > 0, "trace request {}: input_length must be > 0, got {}", i,
                      r.input_length);
    PAGEDKV_CHECK_ARG(r.output_length >= 0, "trace request {}: output_length must be >= 0, got {}",
                      i, r.output_length);
    PAGEDKV_CHECK_ARG(std::isfinite(r.timestamp) && r.timestamp >= 0.0,
                      "trace request {}: timestamp must be finite and >= 0, got {}", i,
                      r.timestamp);
    PAGEDKV_CHECK_ARG(r.timestamp >= prev,
                      "trace request {}: timestamp {} is before the previous request's {}", i,
                      r.timestamp, prev);
    const auto expected = static_cast<size_t>(cdiv(r.input_length, block_size));
    PAGEDKV_CHECK_ARG(r.block_keys.size() == expected,
                      "trace request {}: has {} block keys, expected cdiv({}, {}) = {}", i,
                      r.block_keys.size(), r.input_length, block_size, expected);
    prev = r.timestamp;
  }
}

Trace parse_mooncake(std::string_view text, std::string_view source, uint64_t scope) {
  Trace t;
  t.block_size = kMooncakeBlockSize;
  t.source = std::string(source);
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = fmt::format("{}:{}", source, line_no);
    json rec;
    try {
      rec = json::parse(line);
    } catch (const json::parse_error& e) {
      PAGEDKV_CHECK_ARG(false, "{}: invalid JSON at column {}: {}", where, e.byte, json_reason(e));
    }
    t.requests.push_back(parse_mooncake_record(rec, where, scope));
  }
  stable_order(t);
  return t;
}

Trace parse_kv_cache_tester(std::string_view text, std::string_view source, uint64_t scope) {
  Trace t;
  t.source = std::string(source);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    PAGEDKV_CHECK_ARG(false, "{}:{}: invalid JSON: {}", source, line_col(text, e.byte),
                      json_reason(e));
  }
  int32_t block_size = 0;
  if (doc.is_array()) {
    PAGEDKV_CHECK_ARG(!doc.empty(), "{}: the array holds no session", source);
    for (size_t i = 0; i < doc.size(); ++i) {
      parse_session(doc[i], fmt::format("{}: sessions[{}]", source, i), scope, block_size, t);
    }
  } else {
    parse_session(doc, std::string(source), scope, block_size, t);
  }
  t.block_size = block_size;
  stable_order(t);
  return t;
}

Trace load_traces(std::span<const std::string> paths, TraceFormat format) {
  PAGEDKV_CHECK_ARG(!paths.empty(), "no trace file given");
  std::vector<std::string> files;
  for (const auto& p : paths) {
    for (auto& f : expand(p, format)) files.push_back(std::move(f));
  }
  Trace merged;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string text = read_file(files[i]);
    Trace t = format == TraceFormat::kMooncake ? parse_mooncake(text, files[i], i)
                                               : parse_kv_cache_tester(text, files[i], i);
    PAGEDKV_CHECK_ARG(merged.block_size == 0 || t.block_size == merged.block_size,
                      "{}: block size {} differs from {} used by '{}'", files[i], t.block_size,
                      merged.block_size, files[0]);
    merged.block_size = t.block_size;
    merged.requests.reserve(merged.requests.size() + t.requests.size());
    std::move(t.requests.begin(), t.requests.end(), std::back_inserter(merged.requests));
  }
  merged.source = paths.size() == 1 ? paths[0] : fmt::format("{} files", files.size());
  stable_order(merged);
  merged.validate();
  return merged;
}

Trace load_trace(const std::string& path, TraceFormat format) {
  return load_traces(std::span<const std::string>(&path, 1), format);
}

uint64_t scoped_block_key(uint64_t scope, uint64_t id) {
  return domain_key(kHashIdDomain, scope, id);
}

uint64_t unique_tail_key(uint64_t scope, uint64_t request_index) {
  return domain_key(kTailDomain, scope, request_index);
}

TokenId synthetic_token(uint64_t key, int32_t offset) {
  return to_vocab(
      splitmix64_mix(block_seed(key) + kSplitmix64Gamma * (static_cast<uint64_t>(offset) + 1)));
}

void synthesize_block(uint64_t key, int32_t count, TokenId* out) {
  const uint64_t seed = block_seed(key);
  uint64_t state = seed;
  for (int32_t j = 0; j < count; ++j) {
    state += kSplitmix64Gamma;
    out[j] = to_vocab(splitmix64_mix(state));
  }
}

void synthesize_prompt(const TraceRequest& request, int32_t block_size, std::vector<TokenId>& out) {
  PAGEDKV_CHECK_ARG(block_size > 0, "block_size must be > 0, got {}", block_size);
  const auto expected = static_cast<size_t>(cdiv(request.input_length, block_size));
  PAGEDKV_CHECK_ARG(request.input_length > 0 && request.block_keys.size() == expected,
                    "request with input_length {} needs {} block keys at block size {}, has {}",
                    request.input_length, expected, block_size, request.block_keys.size());
  out.resize(static_cast<size_t>(request.input_length));
  int32_t pos = 0;
  for (uint64_t key : request.block_keys) {
    const int32_t n = std::min(block_size, request.input_length - pos);
    synthesize_block(key, n, out.data() + pos);
    pos += n;
  }
}

}  // namespace pagedkv
