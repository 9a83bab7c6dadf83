// pagedkv/model/safetensors.h - reading and writing safetensors files (rule 51), the format
// Hugging Face models ship their weights in.
//
// Layout: a u64 little-endian header length N; N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end)} plus an optional "__metadata__" map of
// strings; then the byte buffer. Offsets are relative to the buffer; data is row-major and
// little-endian.
//
// Example:
//   std::vector<float> w(6, 1.0f);
//   TensorToWrite t{"w", DType::kFloat32, {2, 3}, std::as_bytes(std::span(w))};
//   write_safetensors("/tmp/w.safetensors", std::span(&t, 1), {{"format", "pt"}});
//   SafetensorsFile f = SafetensorsFile::open("/tmp/w.safetensors");
//   const TensorView* v = f.find("w");          // v->shape == {2, 3}, v->data.size() == 24
//
// Invariants of an opened file (all checked by open()): the dtypes are F32, F16 or BF16; every
// shape is a list of non-negative integers; a tensor's byte range is [begin, end) with
// end - begin == numel * dtype size; the ranges, sorted by begin, tile the buffer exactly
// (no holes, no overlaps, nothing after the last one); "__metadata__" maps strings to strings.
// The file is mapped read-only and every TensorView::data points into that mapping: the views
// live as long as the SafetensorsFile (moving it keeps them valid).
//
// Errors: a file that cannot be opened or mapped is InvalidArgument (naming the path and the OS
// error); a file that breaks any rule above is FormatError naming the file and the tensor.
// write_safetensors: InvalidArgument for a bad tensor (unsupported dtype, duplicate or empty
// name, data size != numel * dtype size); the file is written to a temporary and renamed, so a
// failed call leaves no partial file at `path`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/dtype.h"

namespace pagedkv {

// One tensor of an opened file.
struct TensorView {
  std::string name;
  DType dtype = DType::kFloat32;    // kFloat32, kFloat16 or kBFloat16
  std::vector<int64_t> shape;       // row-major; [] is a scalar (numel 1)
  std::span<const std::byte> data;  // [numel * dtype_size(dtype)] little-endian, in the mapping

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the whole header (see the invariants above).
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // The tensors in file order: ascending data offset (the order write_safetensors was given).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The tensor named `name`, or nullptr.
  const TensorView* find(std::string_view name) const;
  // The "__metadata__" map (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Size of the whole file in bytes.
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  void release() noexcept;

  std::string path_;
  const std::byte* base_ = nullptr;  // [size_] the mapping
  size_t size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// One tensor to write; `data` holds numel * dtype_size(dtype) bytes, row-major little-endian.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kFloat32;  // kFloat32, kFloat16 or kBFloat16
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

// Writes `tensors` in the given order. The header JSON has its keys sorted and is padded with
// spaces to a multiple of 8 bytes, so the same input always gives the same bytes.
void write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The shape of one tensor to be written by the streaming writer below.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

// Streaming form, for files too large to hold in memory twice: writes the header for `specs`,
// then for each tensor i in order calls fill(i, out) with out sized numel * dtype size (zeroed)
// and appends out to the file. Same bytes as write_safetensors with the same tensors.
void write_safetensors(const std::string& path, std::span<const TensorSpec> specs,
                       const std::function<void(size_t, std::span<std::byte>)>& fill,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype code: "F32", "F16", "BF16" (InvalidArgument for other dtypes).
std::string_view safetensors_dtype_code(DType dtype);

}  // namespace pagedkv
