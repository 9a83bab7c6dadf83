// pagedkv/memory/device_mirror.h - the boundary between host staging memory and device memory.
//
// A DeviceBackend allocates DeviceBuffers. A DeviceBuffer is a fixed-size byte range that the
// host fills with upload() and reads back with download(); nothing else crosses the boundary.
// The page tables keep their staging copy on the host and their committed copy in a
// DeviceBuffer, so the only host -> device traffic is commit().
//
// This CPU build ships HostBackend: "device" memory is host memory, upload/download are
// memcpy and host_data() exposes the bytes, so the committed copy can be read in place
// (zero-copy NumPy views). A GPU backend implements the same two classes (device allocation,
// host-to-device copies on the engine's stream) and returns nullptr from host_data().
//
// Example:
//   auto backend = std::make_shared<HostBackend>();
//   std::unique_ptr<DeviceBuffer> buf = backend->allocate(4096);      // zero-filled
//   buf->upload(0, std::as_bytes(std::span(staging)));                 // bytes [0, n)
//   buf->download(0, std::as_writable_bytes(std::span(copy)));
//
// Invariants: a buffer's size never changes after allocate(); a new buffer is zero-filled;
// every upload/download range lies inside the buffer (checked, OutOfRange, nothing copied).
// Not thread-safe: one owner drives a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace pagedkv {

class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;

  virtual int64_t size_bytes() const = 0;

  // Copies `src` into bytes [offset, offset + src.size()) of the buffer.
  // Throws OutOfRange if the range leaves the buffer (nothing is copied).
  virtual void upload(int64_t offset, std::span<const std::byte> src) = 0;

  // Copies bytes [offset, offset + dst.size()) of the buffer into `dst`.
  // Throws OutOfRange if the range leaves the buffer (dst untouched).
  virtual void download(int64_t offset, std::span<std::byte> dst) const = 0;

  // Sets every byte to zero.
  virtual void zero() = 0;

  // The buffer's bytes when the host can address them directly, else nullptr.
  virtual const std::byte* host_data() const = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // A short name for messages ("host", "cuda:0", ...).
  virtual std::string_view name() const = 0;

  // A zero-filled buffer of `num_bytes` >= 0 bytes. Throws InvalidArgument if negative.
  virtual std::unique_ptr<DeviceBuffer> allocate(int64_t num_bytes) = 0;
};

// The backend of the CPU build: device memory is ordinary host memory.
class HostBackend final : public DeviceBackend {
 public:
  std::string_view name() const override { return "host"; }
  std::unique_ptr<DeviceBuffer> allocate(int64_t num_bytes) override;
};

// A new HostBackend (what the page tables use when no backend is given).
std::shared_ptr<DeviceBackend> make_host_backend();

// An int32 matrix [rows, cols] (row-major) kept in a DeviceBuffer: the committed copy of a
// page table. upload_rows copies whole host rows [0, n); the rest stays as it was.
class DeviceMirror {
 public:
  // rows, cols > 0; throws InvalidArgument otherwise. backend must not be null.
  DeviceMirror(std::shared_ptr<DeviceBackend> backend, int32_t rows, int32_t cols);

  int32_t rows() const { return rows_; }
  int32_t cols() const { return cols_; }
  const DeviceBackend& backend() const { return *backend_; }

  // host [n, cols] row-major: rows [0, n) of the staging table.
  // Throws OutOfRange if n not in [0, rows], InvalidArgument if host.size() < n * cols.
  void upload_rows(std::span<const int32_t> host, int32_t n);

  // Every element, rows [0, rows), downloaded into a new vector [rows * cols].
  std::vector<int32_t> read_back() const;

  // Sets every element to zero.
  void zero();

  // The elements in place when the backend is host-addressable, else nullptr.
  const int32_t* host_data() const;

 private:
  std::shared_ptr<DeviceBackend> backend_;
  std::unique_ptr<DeviceBuffer> buffer_;
  int32_t rows_;
  int32_t cols_;
};

}  // namespace pagedkv
