// Shared by the model tests: random data, ISA levels and thread-count guards; a scratch
// directory, raw safetensors files with hand-written headers, and the error-message check every
// loader test makes.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"

namespace pagedkv::testing {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

// The ISA levels this CPU runs, lowest first.
inline std::vector<Isa> model_isa_levels() {
  std::vector<Isa> out = {Isa::kScalar};
  if (detected_isa() >= Isa::kAvx2) out.push_back(Isa::kAvx2);
  if (detected_isa() >= Isa::kAvx512) out.push_back(Isa::kAvx512);
  return out;
}

// Restores the ISA cap when a test ends.
class IsaCap {
 public:
  explicit IsaCap(Isa cap) : saved_(isa_cap()) { set_isa_cap(cap); }
  ~IsaCap() { set_isa_cap(saved_); }

 private:
  Isa saved_;
};

// Restores the OpenMP thread count when a test ends.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("pagedkv_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A safetensors file with the given header text (length prefix computed) and `buffer_bytes`
// bytes of buffer.
inline void write_raw_safetensors(const std::string& path, const std::string& header,
                                  size_t buffer_bytes, uint64_t header_len = UINT64_MAX) {
  const uint64_t n = header_len == UINT64_MAX ? header.size() : header_len;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += header;
  bytes.append(buffer_bytes, '\x01');
  write_bytes(path, bytes);
}

// Runs `f`, which must throw E whose message contains every one of `parts`.
template <typename E, typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "nothing thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
}

}  // namespace pagedkv::testing
