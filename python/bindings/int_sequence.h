// The one converter for integer-sequence arguments (token ids, page ids, index arrays).
//
//   IntSequence<int32_t> ids(obj, "prompt_token_ids");   // NumPy, array.array, memoryview, list
//   std::span<const int32_t> s = ids.span();              // valid while `ids` lives
//
// What it accepts, fastest first:
//   - any object with the buffer protocol (NumPy arrays, array.array, memoryview) of an integer
//     format: read in place when it is C-contiguous, aligned and exactly T; otherwise converted
//     in one C++ pass, in logical (row-major) order whatever its strides;
//   - a list or tuple of Python ints: one C++ pass over the items;
//   - anything else NumPy turns into an integer array (nested lists, ranges).
// Errors name the argument: a non-integer element or dtype (floats, bools, strings) raises
// TypeError; a value outside T's range raises OverflowError with its index and the limit. An
// empty sequence of any dtype is accepted (NumPy makes [] float64).
#pragma once

#include <Python.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace pagedkv::python {

namespace detail {

// A Py_buffer held for the lifetime of the converter (released on destruction).
struct BufferDeleter {
  void operator()(Py_buffer* view) const {
    PyBuffer_Release(view);
    delete view;
  }
};
using BufferPtr = std::unique_ptr<Py_buffer, BufferDeleter>;

// Integer element format of a buffer: signedness from the struct format code, size from the
// buffer's itemsize. false for non-integer formats and non-native byte order.
struct IntFormat {
  bool is_signed = true;
  bool ok = false;
};
inline IntFormat int_format(const Py_buffer& view) {
  const char* f = view.format != nullptr ? view.format : "B";
  if (*f == '@' || *f == '=' || *f == '<') ++f;  // native / little-endian (x86, arm64 LE)
  if (f[0] == '\0' || f[1] != '\0') return {};
  switch (f[0]) {
    case 'b':
    case 'h':
    case 'i':
    case 'l':
    case 'q':
    case 'n': return {true, true};
    case 'B':
    case 'H':
    case 'I':
    case 'L':
    case 'Q':
    case 'N': return {false, true};
    default: return {};
  }
}

[[noreturn]] inline void throw_type(const char* name, const std::string& what) {
  throw pybind11::type_error(std::string(name) + " must be a sequence of integers, got " + what);
}

template <typename T>
[[noreturn]] void throw_out_of_range(const char* name, int64_t index, const std::string& value) {
  PyErr_Format(PyExc_OverflowError, "%s[%lld] = %s is outside the range of int%d [%lld, %lld]",
               name, static_cast<long long>(index), value.c_str(), static_cast<int>(8 * sizeof(T)),
               static_cast<long long>(std::numeric_limits<T>::min()),
               static_cast<long long>(std::numeric_limits<T>::max()));
  throw pybind11::error_already_set();
}

// One element of an integer buffer as int64 (unsigned 64-bit values above INT64_MAX saturate to
// flag the overflow).
inline int64_t read_int(const char* p, bool is_signed, Py_ssize_t size) {
  switch (size) {
    case 1:
      return is_signed ? int64_t{*reinterpret_cast<const int8_t*>(p)}
                       : int64_t{*reinterpret_cast<const uint8_t*>(p)};
    case 2:
      return is_signed ? int64_t{*reinterpret_cast<const int16_t*>(p)}
                       : int64_t{*reinterpret_cast<const uint16_t*>(p)};
    case 4:
      return is_signed ? int64_t{*reinterpret_cast<const int32_t*>(p)}
                       : int64_t{*reinterpret_cast<const uint32_t*>(p)};
    default: {
      if (is_signed) return *reinterpret_cast<const int64_t*>(p);
      const uint64_t u = *reinterpret_cast<const uint64_t*>(p);
      return u > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(u);
    }
  }
}

}  // namespace detail

template <typename T>
class IntSequence {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T>);

 public:
  IntSequence(pybind11::handle obj, const char* name) : name_(name) {
    if (PyObject_CheckBuffer(obj.ptr())) {
      from_buffer(obj);
    } else if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
      if (!from_flat_sequence(obj)) from_numpy(obj);
    } else {
      from_numpy(obj);
    }
  }
  IntSequence(IntSequence&&) noexcept = default;

  std::span<const T> span() const { return span_; }
  std::vector<T> to_vector() const { return {span_.begin(), span_.end()}; }
  // The elements as a vector: moved out when they were converted, copied when read in place.
  std::vector<T> release_vector() && {
    if (!owned_.empty() && span_.data() == owned_.data()) {
      span_ = {};
      return std::move(owned_);
    }
    return to_vector();
  }
  size_t size() const { return span_.size(); }
  // Shape of the input: {n} for flat sequences, the buffer's shape otherwise.
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // ValueError naming the argument unless the input has exactly `n` dimensions (an empty input
  // passes: [] has no shape to speak of).
  const IntSequence& require_ndim(int n) const {
    if (ndim() != n && !span_.empty()) {
      throw pybind11::value_error(std::string(name_) + " must have " + std::to_string(n) +
                                  " dimension(s), got " + std::to_string(ndim()));
    }
    return *this;
  }

 private:
  void from_buffer(pybind11::handle obj) {
    detail::BufferPtr view(new Py_buffer{});
    if (PyObject_GetBuffer(obj.ptr(), view.get(), PyBUF_RECORDS_RO) != 0) {
      delete view.release();
      throw pybind11::error_already_set();
    }
    shape_.assign(view->shape, view->shape + view->ndim);
    const Py_ssize_t count = view->itemsize > 0 ? view->len / view->itemsize : 0;
    if (count == 0) return;  // empty: any dtype
    const detail::IntFormat fmt = detail::int_format(*view);
    if (!fmt.ok) {
      detail::throw_type(
          name_, std::string("buffer format '") + (view->format ? view->format : "?") + "'");
    }
    if (view->ndim == 0) detail::throw_type(name_, "a scalar");
    const bool exact = fmt.is_signed && view->itemsize == static_cast<Py_ssize_t>(sizeof(T));
    const bool aligned = reinterpret_cast<uintptr_t>(view->buf) % alignof(T) == 0;
    if (exact && aligned && PyBuffer_IsContiguous(view.get(), 'C')) {
      span_ = {static_cast<const T*>(view->buf), static_cast<size_t>(count)};
      buffer_ = std::move(view);
      return;
    }
    owned_.resize(static_cast<size_t>(count));
    copy_strided(*view, fmt.is_signed);
    span_ = owned_;
  }

  // Row-major walk over any strides (PyBUF_RECORDS_RO always provides them); each element is
  // checked against T's range.
  void copy_strided(const Py_buffer& view, bool is_signed) {
    std::vector<Py_ssize_t> index(static_cast<size_t>(view.ndim), 0);
    const char* base = static_cast<const char*>(view.buf);
    for (size_t i = 0; i < owned_.size(); ++i) {
      Py_ssize_t offset = 0;
      for (int d = 0; d < view.ndim; ++d) offset += index[static_cast<size_t>(d)] * view.strides[d];
      store(i, detail::read_int(base + offset, is_signed, view.itemsize));
      for (int d = view.ndim - 1; d >= 0; --d) {  // next index, last dimension fastest
        if (++index[static_cast<size_t>(d)] < view.shape[d]) break;
        index[static_cast<size_t>(d)] = 0;
      }
    }
  }

  void store(size_t i, int64_t v) {
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      detail::throw_out_of_range<T>(name_, static_cast<int64_t>(i), std::to_string(v));
    }
    owned_[i] = static_cast<T>(v);
  }

  // A list or tuple of ints. Returns false (nothing kept) when an item is itself a sequence,
  // so the caller hands the object to NumPy.
  bool from_flat_sequence(pybind11::handle obj) {
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(obj.ptr());
    PyObject** items = PySequence_Fast_ITEMS(obj.ptr());
    owned_.resize(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = items[i];
      if (!PyLong_CheckExact(item)) {
        if (PyList_Check(item) || PyTuple_Check(item) || PyObject_CheckBuffer(item)) {
          owned_.clear();
          return false;
        }
        if (PyBool_Check(item) || !PyIndex_Check(item)) {
          detail::throw_type(name_, std::string("an element of type ") + Py_TYPE(item)->tp_name);
        }
      }
      pybind11::object as_int = pybind11::reinterpret_steal<pybind11::object>(PyNumber_Index(item));
      if (!as_int) throw pybind11::error_already_set();
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
      if (overflow != 0) {
        detail::throw_out_of_range<T>(name_, i, pybind11::str(as_int).cast<std::string>());
      }
      store(static_cast<size_t>(i), v);
    }
    shape_ = {static_cast<int64_t>(n)};
    span_ = owned_;
    return true;
  }

  // Whatever NumPy makes an array of (nested lists, ranges); the buffer keeps the array alive.
  void from_numpy(pybind11::handle obj) {
    pybind11::array arr = pybind11::array::ensure(obj);
    if (!arr)
      detail::throw_type(name_, std::string("an object of type ") + Py_TYPE(obj.ptr())->tp_name);
    from_buffer(arr);
  }

  const char* name_;
  detail::BufferPtr buffer_;  // the borrowed buffer read in place
  std::vector<T> owned_;      // converted elements otherwise
  std::span<const T> span_;
  std::vector<int64_t> shape_;
};

}  // namespace pagedkv::python
