// Chained page hashes: the byte encoding of docs/hash-spec.md (version 1) and the two digests.
//
// Speed matters (every full page of every request is hashed once): the message of a typical
// page (16..128 tokens) is laid out in a stack buffer and digested in one call; larger
// messages are streamed into the digest state piece by piece. Nothing is heap-allocated per
// page.
#include "pagedkv/hash/page_hash.h"

#define XXH_INLINE_ALL
#include <openssl/evp.h>
#include <xxhash.h>

#include <bit>
#include <cstring>
#include <limits>
#include <memory>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

static_assert(sizeof(TokenId) == 4, "the spec encodes tokens as 32-bit integers");

// Spec section "Extra keys": one tag byte introduces each key.
constexpr uint8_t kTagLora = 0x01;
constexpr uint8_t kTagMultiModal = 0x02;
constexpr uint8_t kTagCacheSalt = 0x03;

// Spec section "ROOT": the parent of page 0 is the digest of this ASCII string.
constexpr std::string_view kRootLabel = "pagedkv/page-hash/v1/root";

constexpr size_t kMaxDigest = 32;
constexpr size_t kStackMessageBytes = 1024;

// Where encoded bytes go: a flat buffer (then one digest call) or a streaming digest.
struct BufferSink {
  uint8_t* p;
  void put(const void* data, size_t n) {
    std::memcpy(p, data, n);
    p += n;
  }
};

struct Xxh3StreamSink {
  XXH3_state_t state;
  void put(const void* data, size_t n) { XXH3_128bits_update(&state, data, n); }
};

struct EvpStreamSink {
  EVP_MD_CTX* ctx;
  void put(const void* data, size_t n) {
    PAGEDKV_ASSERT(EVP_DigestUpdate(ctx, data, n) == 1, "EVP_DigestUpdate failed");
  }
};

template <class Sink>
void put_u8(Sink& s, uint8_t v) {
  s.put(&v, 1);
}

constexpr bool kLittleEndian = std::endian::native == std::endian::little;

// Little-endian bytes of an unsigned integer (a plain copy on little-endian hosts).
template <class U>
void store_le(U v, uint8_t* out) {
  if constexpr (kLittleEndian) {
    std::memcpy(out, &v, sizeof(U));
  } else {
    for (size_t i = 0; i < sizeof(U); ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

template <class Sink>
void put_u32_le(Sink& s, uint32_t v) {
  uint8_t b[4];
  store_le(v, b);
  s.put(b, 4);
}

template <class Sink>
void put_i64_le(Sink& s, int64_t v) {
  uint8_t b[8];
  store_le(static_cast<uint64_t>(v), b);
  s.put(b, 8);
}

template <class Sink>
void put_tokens(Sink& s, std::span<const TokenId> tokens) {
  if constexpr (kLittleEndian) {
    s.put(tokens.data(), tokens.size() * sizeof(TokenId));
  } else {
    for (TokenId t : tokens) put_u32_le(s, static_cast<uint32_t>(t));
  }
}

size_t message_size(size_t digest, size_t num_tokens, const PageExtraKeys& extra) {
  size_t n = digest + 4 + 4 * num_tokens;
  if (extra.lora_id) n += 1 + 8;
  for (const MultiModalInput* mm : extra.mm_inputs) n += 1 + 4 + mm->content_hash.size() + 8;
  if (!extra.cache_salt.empty()) n += 1 + 4 + extra.cache_salt.size();
  return n;
}

// The whole message of spec section "Message": parent, tokens, extra keys.
template <class Sink>
void encode(Sink& s, const uint8_t* parent, size_t digest, std::span<const TokenId> tokens,
            const PageExtraKeys& extra) {
  s.put(parent, digest);
  put_u32_le(s, static_cast<uint32_t>(tokens.size()));
  put_tokens(s, tokens);
  if (extra.lora_id) {
    put_u8(s, kTagLora);
    put_i64_le(s, *extra.lora_id);
  }
  for (const MultiModalInput* mm : extra.mm_inputs) {
    put_u8(s, kTagMultiModal);
    put_u32_le(s, static_cast<uint32_t>(mm->content_hash.size()));
    s.put(mm->content_hash.data(), mm->content_hash.size());
    put_i64_le(s, mm->offset);
  }
  if (!extra.cache_salt.empty()) {
    put_u8(s, kTagCacheSalt);
    put_u32_le(s, static_cast<uint32_t>(extra.cache_salt.size()));
    s.put(extra.cache_salt.data(), extra.cache_salt.size());
  }
}

void xxh3_digest(const void* data, size_t n, uint8_t* out) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(data, n));
  std::memcpy(out, c.digest, 16);
}

void xxh3_final(XXH3_state_t* state, uint8_t* out) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(state));
  std::memcpy(out, c.digest, 16);
}

// SHA-256 through EVP. The algorithm object is fetched once, and each thread reuses one
// context: a fetch or a context allocation per page would cost more than the digest itself.
const EVP_MD* sha256_md() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    PAGEDKV_ASSERT(fetched != nullptr, "OpenSSL cannot provide SHA256");
    return fetched;
  }();
  return md;
}

EVP_MD_CTX* thread_sha256_ctx() {
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  PAGEDKV_ASSERT(ctx != nullptr, "EVP_MD_CTX_new failed");
  PAGEDKV_ASSERT(EVP_DigestInit_ex2(ctx.get(), sha256_md(), nullptr) == 1,
                 "EVP_DigestInit_ex2 failed");
  return ctx.get();
}

void sha256_final(EVP_MD_CTX* ctx, uint8_t* out) {
  unsigned int len = 0;
  PAGEDKV_ASSERT(EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 32, "EVP_DigestFinal failed");
}

// PageHash words are little-endian loads of the digest bytes (spec section "PageHash").
void to_digest(const PageHash& h, uint8_t* out) {
  for (size_t w = 0; w < 4; ++w) store_le(h.words[w], out + 8 * w);
}

PageHash load_digest(const uint8_t* digest, size_t size) {
  PageHash h;
  if constexpr (kLittleEndian) {
    std::memcpy(h.words.data(), digest, size);
  } else {
    for (size_t i = 0; i < size; ++i) h.words[i / 8] |= uint64_t{digest[i]} << (8 * (i % 8));
  }
  return h;
}

// Spec section "Output": an all-zero digest would read as "no hash"; it becomes 00..01.
PageHash from_digest(const uint8_t* digest, size_t size) {
  PageHash h = load_digest(digest, size);
  if (h.empty()) {
    uint8_t one[kMaxDigest] = {};
    one[size - 1] = 1;
    h = load_digest(one, size);
  }
  return h;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view hash_algorithm_name(HashAlgorithm algo) {
  switch (algo) {
    case HashAlgorithm::kXxh3_128: return "xxh3_128";
    case HashAlgorithm::kSha256: return "sha256";
  }
  PAGEDKV_CHECK_ARG(false, "unknown hash algorithm {}", static_cast<int>(algo));
  return {};
}

HashAlgorithm parse_hash_algorithm(std::string_view name) {
  if (name == "xxh3_128") return HashAlgorithm::kXxh3_128;
  if (name == "sha256") return HashAlgorithm::kSha256;
  PAGEDKV_CHECK_ARG(false, "unknown hash algorithm '{}': expected 'xxh3_128' or 'sha256'", name);
  return {};
}

int digest_size(HashAlgorithm algo) {
  switch (algo) {
    case HashAlgorithm::kXxh3_128: return 16;
    case HashAlgorithm::kSha256: return 32;
  }
  PAGEDKV_CHECK_ARG(false, "unknown hash algorithm {}", static_cast<int>(algo));
  return 0;
}

std::string PageHash::bytes(int size) const {
  PAGEDKV_CHECK_ARG(size >= 1 && size <= 32, "digest size must be in [1, 32], got {}", size);
  uint8_t digest[kMaxDigest];
  to_digest(*this, digest);
  return std::string(reinterpret_cast<const char*>(digest), static_cast<size_t>(size));
}

PageHash PageHash::from_bytes(std::string_view bytes) {
  PAGEDKV_CHECK_ARG(!bytes.empty() && bytes.size() <= kMaxDigest,
                    "a digest has 1 to 32 bytes, got {}", bytes.size());
  return load_digest(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string PageHash::hex(int size) const {
  PAGEDKV_CHECK_ARG(size >= 1 && size <= 32, "digest size must be in [1, 32], got {}", size);
  static constexpr char kDigits[] = "0123456789abcdef";
  uint8_t digest[kMaxDigest];
  to_digest(*this, digest);
  std::string out(2 * static_cast<size_t>(size), '0');
  for (int i = 0; i < size; ++i) {
    out[2 * i] = kDigits[digest[i] >> 4];
    out[2 * i + 1] = kDigits[digest[i] & 0xf];
  }
  return out;
}

PageHash PageHash::from_hex(std::string_view hex) {
  PAGEDKV_CHECK_ARG(!hex.empty() && hex.size() % 2 == 0 && hex.size() <= 2 * kMaxDigest,
                    "a hex digest has an even number of digits in [2, 64], got {} ('{}')",
                    hex.size(), hex);
  uint8_t digest[kMaxDigest] = {};
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i]);
    const int lo = hex_value(hex[i + 1]);
    PAGEDKV_CHECK_ARG(hi >= 0 && lo >= 0, "'{}' is not a hex digit string (position {})", hex,
                      hi < 0 ? i : i + 1);
    digest[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return from_bytes(std::string_view(reinterpret_cast<const char*>(digest), hex.size() / 2));
}

PageHasher::PageHasher(HashAlgorithm algo) : algo_(algo) {
  PAGEDKV_CHECK_ARG(algo == HashAlgorithm::kXxh3_128 || algo == HashAlgorithm::kSha256,
                    "unknown hash algorithm {}", static_cast<int>(algo));
}

namespace {
PageHash compute_root(HashAlgorithm algo) {
  uint8_t digest[kMaxDigest];
  if (algo == HashAlgorithm::kXxh3_128) {
    xxh3_digest(kRootLabel.data(), kRootLabel.size(), digest);
  } else {
    EVP_MD_CTX* ctx = thread_sha256_ctx();
    EvpStreamSink{ctx}.put(kRootLabel.data(), kRootLabel.size());
    sha256_final(ctx, digest);
  }
  return from_digest(digest, static_cast<size_t>(digest_size(algo)));
}
}  // namespace

PageHash PageHasher::root() const {
  // Constants of the spec, computed once.
  static const PageHash xxh3_root = compute_root(HashAlgorithm::kXxh3_128);
  static const PageHash sha256_root = compute_root(HashAlgorithm::kSha256);
  return algo_ == HashAlgorithm::kXxh3_128 ? xxh3_root : sha256_root;
}

PageHash PageHasher::parse_digest(std::string_view bytes) const {
  PAGEDKV_CHECK_ARG(bytes.size() == static_cast<size_t>(digest_size()),
                    "a {} digest has {} bytes, got {}", hash_algorithm_name(algo_), digest_size(),
                    bytes.size());
  const PageHash h = PageHash::from_bytes(bytes);
  PAGEDKV_CHECK_ARG(!h.empty(), "an all-zero digest means 'no hash' and is never produced");
  return h;
}

PageHash PageHasher::hash_page(const PageHash* parent, std::span<const TokenId> tokens,
                               const PageExtraKeys& extra) const {
  const auto dsize = static_cast<size_t>(digest_size());
  PAGEDKV_CHECK_ARG(!tokens.empty(), "a page hash needs at least one token, got 0");
  PAGEDKV_CHECK_ARG(tokens.size() <= std::numeric_limits<int32_t>::max(),
                    "a page holds at most {} tokens, got {}", std::numeric_limits<int32_t>::max(),
                    tokens.size());
  if (parent != nullptr) {
    PAGEDKV_CHECK_ARG(!parent->empty(), "parent hash is empty (use nullptr for page 0)");
    PAGEDKV_CHECK_ARG(dsize == 32 || (parent->words[2] | parent->words[3]) == 0,
                      "parent hash {} is longer than a {} digest ({} bytes)", parent->hex(),
                      hash_algorithm_name(algo_), dsize);
    PAGEDKV_CHECK_ARG(extra.cache_salt.empty(),
                      "the cache salt is a page-0 key, but a parent hash was given");
  }
  PAGEDKV_CHECK_ARG(extra.cache_salt.size() <= std::numeric_limits<uint32_t>::max(),
                    "cache salt of {} bytes exceeds the u32 length field", extra.cache_salt.size());
  for (size_t i = 0; i < extra.mm_inputs.size(); ++i) {
    const MultiModalInput* mm = extra.mm_inputs[i];
    PAGEDKV_CHECK_ARG(mm != nullptr, "multimodal input {} is null", i);
    PAGEDKV_CHECK_ARG(!mm->content_hash.empty() &&
                          mm->content_hash.size() <= std::numeric_limits<uint32_t>::max(),
                      "multimodal input {} has an empty or oversized content hash ({} bytes)", i,
                      mm->content_hash.size());
    PAGEDKV_CHECK_ARG(mm->length > 0, "multimodal input {} has length {}, must be > 0", i,
                      mm->length);
    PAGEDKV_CHECK_ARG(i == 0 || extra.mm_inputs[i - 1]->offset <= mm->offset,
                      "multimodal inputs must be in offset order: input {} at {} follows {}", i,
                      mm->offset, extra.mm_inputs[i - 1]->offset);
  }

  uint8_t parent_bytes[kMaxDigest];
  to_digest(parent != nullptr ? *parent : root(), parent_bytes);

  uint8_t digest[kMaxDigest];
  const size_t size = message_size(dsize, tokens.size(), extra);
  if (size <= kStackMessageBytes) {
    uint8_t buf[kStackMessageBytes];
    BufferSink sink{buf};
    encode(sink, parent_bytes, dsize, tokens, extra);
    PAGEDKV_DCHECK(static_cast<size_t>(sink.p - buf) == size, "message size mismatch");
    if (algo_ == HashAlgorithm::kXxh3_128) {
      xxh3_digest(buf, size, digest);
    } else {
      EVP_MD_CTX* ctx = thread_sha256_ctx();
      EvpStreamSink{ctx}.put(buf, size);
      sha256_final(ctx, digest);
    }
  } else if (algo_ == HashAlgorithm::kXxh3_128) {
    Xxh3StreamSink sink;
    XXH3_128bits_reset(&sink.state);
    encode(sink, parent_bytes, dsize, tokens, extra);
    xxh3_final(&sink.state, digest);
  } else {
    EvpStreamSink sink{thread_sha256_ctx()};
    encode(sink, parent_bytes, dsize, tokens, extra);
    sha256_final(sink.ctx, digest);
  }
  return from_digest(digest, dsize);
}

}  // namespace pagedkv
