#include "pagedkv/memory/device_mirror.h"

#include <cstring>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

class HostBuffer final : public DeviceBuffer {
 public:
  explicit HostBuffer(int64_t num_bytes) : bytes_(static_cast<size_t>(num_bytes)) {}

  int64_t size_bytes() const override { return static_cast<int64_t>(bytes_.size()); }

  void upload(int64_t offset, std::span<const std::byte> src) override {
    check_range(offset, static_cast<int64_t>(src.size()), "upload");
    if (!src.empty()) std::memcpy(bytes_.data() + offset, src.data(), src.size());
  }

  void download(int64_t offset, std::span<std::byte> dst) const override {
    check_range(offset, static_cast<int64_t>(dst.size()), "download");
    if (!dst.empty()) std::memcpy(dst.data(), bytes_.data() + offset, dst.size());
  }

  void zero() override { std::memset(bytes_.data(), 0, bytes_.size()); }

  const std::byte* host_data() const override { return bytes_.data(); }

 private:
  void check_range(int64_t offset, int64_t n, const char* what) const {
    PAGEDKV_CHECK_RANGE(offset >= 0 && offset <= size_bytes() && n <= size_bytes() - offset,
                        "{} of bytes [{}, {}) leaves the {}-byte device buffer", what, offset,
                        offset + n, size_bytes());
  }

  std::vector<std::byte> bytes_;  // value-initialised: zero-filled
};

}  // namespace

std::unique_ptr<DeviceBuffer> HostBackend::allocate(int64_t num_bytes) {
  PAGEDKV_CHECK_ARG(num_bytes >= 0, "device buffer size must be >= 0 bytes, got {}", num_bytes);
  return std::make_unique<HostBuffer>(num_bytes);
}

std::shared_ptr<DeviceBackend> make_host_backend() { return std::make_shared<HostBackend>(); }

DeviceMirror::DeviceMirror(std::shared_ptr<DeviceBackend> backend, int32_t rows, int32_t cols)
    : backend_(std::move(backend)), rows_(rows), cols_(cols) {
  PAGEDKV_CHECK_ARG(backend_ != nullptr, "device backend must not be null");
  PAGEDKV_CHECK_ARG(rows > 0 && cols > 0, "device mirror shape must be positive, got [{}, {}]",
                    rows, cols);
  buffer_ = backend_->allocate(int64_t{rows} * cols * int64_t{sizeof(int32_t)});
  PAGEDKV_ASSERT(buffer_ != nullptr &&
                     buffer_->size_bytes() == int64_t{rows} * cols * int64_t{sizeof(int32_t)},
                 "backend '{}' returned a buffer of the wrong size", backend_->name());
}

void DeviceMirror::upload_rows(std::span<const int32_t> host, int32_t n) {
  PAGEDKV_CHECK_RANGE(n >= 0 && n <= rows_, "cannot upload {} rows: the mirror has {} rows", n,
                      rows_);
  const size_t count = static_cast<size_t>(n) * static_cast<size_t>(cols_);
  PAGEDKV_CHECK_ARG(host.size() >= count, "upload of {} rows needs {} elements, host has {}", n,
                    count, host.size());
  buffer_->upload(0, std::as_bytes(host.first(count)));
}

std::vector<int32_t> DeviceMirror::read_back() const {
  std::vector<int32_t> out(static_cast<size_t>(rows_) * static_cast<size_t>(cols_));
  buffer_->download(0, std::as_writable_bytes(std::span(out)));
  return out;
}

void DeviceMirror::zero() { buffer_->zero(); }

const int32_t* DeviceMirror::host_data() const {
  return reinterpret_cast<const int32_t*>(buffer_->host_data());
}

}  // namespace pagedkv
