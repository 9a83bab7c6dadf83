// NumPy helpers shared by the binding files that take or return arrays: the DType mapping of
// cache arrays (bfloat16 travels as uint16 bit patterns and fp8_e4m3 as uint8 codes, NumPy has
// neither) and token tensors over 3-D inputs. Integer index arrays go through IntSequence
// (int_sequence.h).
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>
#include <limits>
#include <string>

#include "pagedkv/common/dtype.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv::python {

inline pybind11::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::kFloat32: return pybind11::dtype::of<float>();
    case DType::kFloat16: return pybind11::dtype("float16");
    case DType::kBFloat16: return pybind11::dtype::of<uint16_t>();
    case DType::kInt8: return pybind11::dtype::of<int8_t>();
    case DType::kFp8E4M3: return pybind11::dtype::of<uint8_t>();
  }
  return pybind11::dtype::of<uint8_t>();
}

// The cache dtype an array's NumPy dtype stands for; InvalidArgument (naming `name`) otherwise.
inline DType dtype_of(const pybind11::array& a, const char* name) {
  const pybind11::dtype d = a.dtype();
  const char kind = d.kind();
  const pybind11::ssize_t size = d.itemsize();
  if (kind == 'f' && size == 4) return DType::kFloat32;
  if (kind == 'f' && size == 2) return DType::kFloat16;
  if (kind == 'u' && size == 2) return DType::kBFloat16;
  if (kind == 'i' && size == 1) return DType::kInt8;
  if (kind == 'u' && size == 1) return DType::kFp8E4M3;
  PAGEDKV_CHECK_ARG(false,
                    "{} has NumPy dtype {}; expected float32, float16, uint16 (bfloat16), int8 or "
                    "uint8 (fp8_e4m3)",
                    name,
                    pybind11::str(static_cast<const pybind11::handle&>(d)).cast<std::string>());
  return DType::kFloat32;
}

// A 3-D [rows, heads, dim] input as a ConstTokenTensor over its data; a non-contiguous `a` is
// replaced by a C-contiguous copy first (the caller keeps `a` alive while the tensor is used).
inline ConstTokenTensor input_tensor(pybind11::array& a, const char* name) {
  PAGEDKV_CHECK_ARG(a.ndim() == 3, "{} must be 3-D [tokens, heads, dim], got {} dims", name,
                    a.ndim());
  if (!(a.flags() & pybind11::array::c_style)) {
    a = pybind11::array::ensure(a, pybind11::array::c_style);
  }
  return {a.data(), dtype_of(a, name), static_cast<int64_t>(a.shape(0)),
          static_cast<int32_t>(a.shape(1)), static_cast<int32_t>(a.shape(2))};
}

}  // namespace pagedkv::python
