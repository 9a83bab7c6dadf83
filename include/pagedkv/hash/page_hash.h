// pagedkv/hash/page_hash.h - chained, portable page hashes (byte-exact spec: docs/hash-spec.md).
//
// A full page of tokens gets h_i = H(h_{i-1} or ROOT || tokens of page i || extra keys of page i).
// The extra keys of a page are the request's LoRA adapter id, the multimodal inputs that
// overlap the page as (content hash, offset), and - in page 0 only - the request's cache salt.
// Only full pages are hashed.
//
// Example:
//   PageHasher hasher(HashAlgorithm::kXxh3_128);
//   PageExtraKeys extra{.lora_id = 7};
//   PageHash h0 = hasher.hash_page(nullptr, tokens_0_to_15, extra);
//   PageHash h1 = hasher.hash_page(&h0, tokens_16_to_31, extra);
//
// Invariants: same algorithm + same inputs -> same bytes, in every process, machine and
// language (golden vectors in tests/cpp/hash and tests/python); the all-zero PageHash means
// "no hash" and is never produced for a real page (the spec remaps it).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

enum class HashAlgorithm : uint8_t {
  kXxh3_128 = 1,  // default: fast, 128-bit digest
  kSha256 = 2,    // collision resistant, for deployments where tenants could craft collisions
};

std::string_view hash_algorithm_name(HashAlgorithm algo);   // "xxh3_128" / "sha256"
HashAlgorithm parse_hash_algorithm(std::string_view name);  // throws InvalidArgument
int digest_size(HashAlgorithm algo);                        // 16 / 32 bytes

// Version of docs/hash-spec.md these functions implement (changes every hash when bumped).
inline constexpr int kPageHashSpecVersion = 1;

// A digest of up to 32 bytes (xxh3_128 fills bytes 0..15 and leaves 16..31 zero).
// Stored as four little-endian 64-bit words so comparison and hashing are word operations.
struct PageHash {
  std::array<uint64_t, 4> words{};

  bool empty() const { return (words[0] | words[1] | words[2] | words[3]) == 0; }
  friend bool operator==(const PageHash&, const PageHash&) = default;
  // Digest bytes in spec order (16 for xxh3_128, 32 for sha256 - `size` says how many).
  std::string hex(int size = 32) const;
  static PageHash from_hex(std::string_view hex);  // throws InvalidArgument
  // Raw digest bytes in spec order: bytes(size) has `size` bytes (1..32); from_bytes takes
  // 1..32 bytes and zero-fills the rest (throws InvalidArgument otherwise).
  std::string bytes(int size = 32) const;
  static PageHash from_bytes(std::string_view bytes);
};

// One multimodal input of a request: its content hash and where its placeholder tokens sit.
struct MultiModalInput {
  std::string content_hash{};  // identifier of the content (e.g. a hex digest); non-empty
  int64_t offset = 0;          // first token position of the placeholder range
  int64_t length = 0;          // number of placeholder tokens (> 0)
};

// The extra keys that enter one page's hash (built per page by Request).
struct PageExtraKeys {
  // Default member initializers let callers use designated initializers ({.lora_id = 7}).
  std::optional<int64_t> lora_id{};                 // LoRA adapter identity, if any
  std::vector<const MultiModalInput*> mm_inputs{};  // inputs overlapping this page, in offset order
  std::string_view cache_salt{};                    // page 0 only; empty = no salt
};

class PageHasher {
 public:
  explicit PageHasher(HashAlgorithm algo = HashAlgorithm::kXxh3_128);

  HashAlgorithm algorithm() const { return algo_; }
  int digest_size() const { return pagedkv::digest_size(algo_); }
  // parent == nullptr means page 0 (the spec's ROOT parent).
  // Throws InvalidArgument on: no tokens; a parent that is empty or longer than this
  // algorithm's digest; a cache salt with a parent (the salt is a page-0 key); a null or
  // invalid (empty content hash, length <= 0) multimodal input, or inputs out of offset order.
  // Does not allocate: the message is built on the stack or streamed into the digest.
  PageHash hash_page(const PageHash* parent, std::span<const TokenId> tokens,
                     const PageExtraKeys& extra) const;
  // The spec's ROOT value for this algorithm (the parent of page 0).
  PageHash root() const;
  // A digest of this algorithm given as raw bytes (e.g. from Python); throws InvalidArgument
  // unless it has exactly digest_size() bytes and is not all zero.
  PageHash parse_digest(std::string_view bytes) const;

 private:
  HashAlgorithm algo_;
};

}  // namespace pagedkv
