#include "pagedkv/model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

using json = nlohmann::json;

// Closes a file descriptor on every path out of open().
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

bool parse_dtype_code(const std::string& code, DType* out) {
  if (code == "F32")
    *out = DType::kFloat32;
  else if (code == "F16")
    *out = DType::kFloat16;
  else if (code == "BF16")
    *out = DType::kBFloat16;
  else
    return false;
  return true;
}

// numel of `shape`, or -1 when the product overflows int64.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

std::string describe(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// One header entry, checked except for its place in the buffer.
struct Entry {
  TensorView view;
  uint64_t begin = 0;
  uint64_t end = 0;
};

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& what) {
  detail::fail_format_error("safetensors file '{}': tensor '{}': {}", path, name, what);
}

Entry parse_entry(const std::string& path, const std::string& name, const json& j) {
  auto fail = [&](const std::string& what) { fail_tensor(path, name, what); };
  if (!j.is_object()) fail(fmt::format("entry must be an object, got {}", describe(j)));
  Entry e;
  e.view.name = name;
  auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string()) fail("missing \"dtype\" string");
  if (!parse_dtype_code(dt->get<std::string>(), &e.view.dtype)) {
    fail(fmt::format("unsupported dtype {} (expected F32, F16 or BF16)", dt->dump()));
  }
  auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) fail("\"shape\" must be a list of integers");
  for (const json& d : *shape) {
    // The parser stores every non-negative integer as unsigned.
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{1} << 62) {
      fail(fmt::format("\"shape\" must be a list of non-negative integers, got {}",
                       describe(*shape)));
    }
    e.view.shape.push_back(d.get<int64_t>());
  }
  auto offsets = j.find("data_offsets");
  if (offsets == j.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    fail(fmt::format("\"data_offsets\" must be [begin, end] of non-negative integers, got {}",
                     offsets == j.end() ? std::string("nothing") : describe(*offsets)));
  }
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.begin > e.end) fail(fmt::format("data_offsets [{}, {}] has begin > end", e.begin, e.end));
  const int64_t numel = checked_numel(e.view.shape);
  if (numel < 0) fail(fmt::format("shape {} has too many elements", describe(*shape)));
  const uint64_t want = static_cast<uint64_t>(numel) * dtype_size(e.view.dtype);
  if (e.end - e.begin != want) {
    fail(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", e.begin,
                     e.end, e.end - e.begin, describe(*shape), dt->get<std::string>(), want));
  }
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& j) {
  PAGEDKV_CHECK_FORMAT(j.is_object(),
                       "safetensors file '{}': \"__metadata__\" must be a map of "
                       "strings, got {}",
                       path, describe(j));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    PAGEDKV_CHECK_FORMAT(v.is_string(),
                         "safetensors file '{}': \"__metadata__\" value of '{}' must be a string, "
                         "got {}",
                         path, k, describe(v));
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

// Sorted by begin, the byte ranges must tile [0, buffer_size) exactly.
void check_tiling(const std::string& path, std::vector<Entry>& entries, uint64_t buffer_size) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const Entry& e : entries) {
    PAGEDKV_CHECK_FORMAT(e.end <= buffer_size,
                         "safetensors file '{}': tensor '{}': data_offsets [{}, {}] end past the "
                         "{}-byte buffer",
                         path, e.view.name, e.begin, e.end, buffer_size);
    PAGEDKV_CHECK_FORMAT(e.begin >= cursor,
                         "safetensors file '{}': tensor '{}': data_offsets [{}, {}] overlap the "
                         "previous tensor, which ends at {}",
                         path, e.view.name, e.begin, e.end, cursor);
    PAGEDKV_CHECK_FORMAT(e.begin == cursor,
                         "safetensors file '{}': tensor '{}': data_offsets [{}, {}] leave a hole "
                         "of {} bytes after offset {}",
                         path, e.view.name, e.begin, e.end, e.begin - cursor, cursor);
    cursor = e.end;
  }
  PAGEDKV_CHECK_FORMAT(
      cursor == buffer_size,
      "safetensors file '{}': the tensors end at byte {} of the {}-byte buffer "
      "(no tensor covers the rest{})",
      path, cursor, buffer_size,
      entries.empty() ? "" : fmt::format("; last tensor '{}'", entries.back().view.name));
}

json parse_header(const std::string& path, const std::byte* base, uint64_t n) {
  const auto* text = reinterpret_cast<const char*>(base + 8);
  json header;
  try {
    header = json::parse(text, text + n);
  } catch (const json::exception& e) {
    detail::fail_format_error("safetensors file '{}': the {}-byte header is not valid JSON: {}",
                              path, n, e.what());
  }
  PAGEDKV_CHECK_FORMAT(header.is_object(),
                       "safetensors file '{}': the header must be a JSON object, got {}", path,
                       describe(header));
  return header;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string_view safetensors_dtype_code(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "F32";
    case DType::kFloat16: return "F16";
    case DType::kBFloat16: return "BF16";
    default: break;
  }
  detail::fail_invalid_argument("safetensors holds F32, F16 or BF16 tensors, not {}",
                                dtype_name(dtype));
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  FdCloser fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  PAGEDKV_CHECK_ARG(fd.fd >= 0, "cannot open safetensors file '{}': {}", path,
                    std::strerror(errno));
  struct stat st {};
  PAGEDKV_CHECK_ARG(::fstat(fd.fd, &st) == 0, "cannot stat '{}': {}", path, std::strerror(errno));
  const auto size = static_cast<uint64_t>(st.st_size);
  PAGEDKV_CHECK_FORMAT(size >= 8,
                       "safetensors file '{}' has {} bytes, fewer than the 8-byte header length",
                       path, size);
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  PAGEDKV_CHECK_ARG(m != MAP_FAILED, "cannot map '{}' ({} bytes): {}", path, size,
                    std::strerror(errno));
  SafetensorsFile file;  // owns the mapping from here on: every throw below unmaps it
  file.path_ = path;
  file.base_ = static_cast<const std::byte*>(m);
  file.size_ = size;

  const uint64_t n = read_u64_le(file.base_);
  PAGEDKV_CHECK_FORMAT(n <= size - 8,
                       "safetensors file '{}': header length {} runs past the end of the {}-byte "
                       "file",
                       path, n, size);
  const json header = parse_header(path, file.base_, n);
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      file.metadata_ = parse_metadata(path, value);
    } else {
      entries.push_back(parse_entry(path, name, value));
    }
  }
  const uint64_t buffer_size = size - 8 - n;
  check_tiling(path, entries, buffer_size);
  const std::byte* buffer = file.base_ + 8 + n;
  file.tensors_.reserve(entries.size());
  for (Entry& e : entries) {
    e.view.data = std::span<const std::byte>(buffer + e.begin, e.end - e.begin);
    file.index_.emplace(e.view.name, file.tensors_.size());
    file.tensors_.push_back(std::move(e.view));
  }
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      tensors_(std::move(other.tensors_)),
      index_(std::move(other.index_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() noexcept {
  if (base_ != nullptr) ::munmap(const_cast<std::byte*>(base_), size_);
  base_ = nullptr;
  size_ = 0;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// The header bytes: sorted-key JSON padded with spaces to a multiple of 8.
std::string make_header(std::span<const TensorSpec> specs,
                        const std::map<std::string, std::string>& metadata) {
  json header = json::object();  // std::map underneath: keys come out sorted
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorSpec& s : specs) {
    PAGEDKV_CHECK_ARG(!s.name.empty() && s.name != "__metadata__",
                      "tensor name '{}' is reserved or empty", s.name);
    PAGEDKV_CHECK_ARG(names.insert(s.name).second, "tensor '{}' is given twice", s.name);
    const std::string_view code = safetensors_dtype_code(s.dtype);
    for (int64_t d : s.shape) {
      PAGEDKV_CHECK_ARG(d >= 0, "tensor '{}': shape [{}] has a negative dimension", s.name,
                        fmt::join(s.shape, ", "));
    }
    const int64_t numel = checked_numel(s.shape);
    PAGEDKV_CHECK_ARG(numel >= 0, "tensor '{}': shape [{}] has too many elements", s.name,
                      fmt::join(s.shape, ", "));
    const uint64_t bytes = static_cast<uint64_t>(numel) * dtype_size(s.dtype);
    header[s.name] = {
        {"dtype", code}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_or_fail(std::FILE* f, const void* data, size_t n, const std::string& tmp) {
  PAGEDKV_CHECK_ARG(n == 0 || std::fwrite(data, 1, n, f) == n, "cannot write '{}': {}", tmp,
                    std::strerror(errno));
}

}  // namespace

void write_safetensors(const std::string& path, std::span<const TensorSpec> specs,
                       const std::function<void(size_t, std::span<std::byte>)>& fill,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = make_header(specs, metadata);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  PAGEDKV_CHECK_ARG(f != nullptr, "cannot create '{}': {}", tmp, std::strerror(errno));
  try {
    std::byte len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xff);
    write_or_fail(f, len, 8, tmp);
    write_or_fail(f, header.data(), header.size(), tmp);
    std::vector<std::byte> buf;
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto bytes =
          static_cast<size_t>(checked_numel(specs[i].shape)) * dtype_size(specs[i].dtype);
      buf.assign(bytes, std::byte{0});
      fill(i, std::span<std::byte>(buf));
      write_or_fail(f, buf.data(), buf.size(), tmp);
    }
    PAGEDKV_CHECK_ARG(std::fclose(std::exchange(f, nullptr)) == 0, "cannot write '{}': {}", tmp,
                      std::strerror(errno));
    PAGEDKV_CHECK_ARG(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '{}' to '{}': {}",
                      tmp, path, std::strerror(errno));
  } catch (...) {
    if (f != nullptr) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

void write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const TensorToWrite& t : tensors) {
    specs.push_back({t.name, t.dtype, t.shape});
    const int64_t numel = checked_numel(t.shape);
    // The header check below reports bad shapes; here only the data size is compared.
    if (numel < 0 || std::any_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d < 0; }))
      continue;
    safetensors_dtype_code(t.dtype);
    const uint64_t want = static_cast<uint64_t>(numel) * dtype_size(t.dtype);
    PAGEDKV_CHECK_ARG(t.data.size() == want,
                      "tensor '{}': {} bytes of data, but shape [{}] of {} needs {}", t.name,
                      t.data.size(), fmt::join(t.shape, ", "), dtype_name(t.dtype), want);
  }
  write_safetensors(
      path, std::span<const TensorSpec>(specs),
      [&](size_t i, std::span<std::byte> out) {
        if (!out.empty()) std::memcpy(out.data(), tensors[i].data.data(), out.size());
      },
      metadata);
}

}  // namespace pagedkv
