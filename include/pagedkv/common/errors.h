// pagedkv/common/errors.h - the typed errors every public call throws, and the checks that throw
// them.
//
// Three levels (as in the style guide):
//   PAGEDKV_CHECK_ARG / _RANGE / _STATE  bad user input or a call at the wrong time: always on,
//                                        throw a typed error whose message names the bad value
//                                        and the limit. Callers rely on the strong guarantee:
//                                        every check runs before the object is modified.
//   PAGEDKV_ASSERT                       an internal invariant: always on, throws InternalError.
//   PAGEDKV_DCHECK                       debug-only invariant (compiled out under NDEBUG).
//
// Example:
//   PAGEDKV_CHECK_ARG(n >= 0, "num_pages must be >= 0, got {}", n);
//   PAGEDKV_CHECK_RANGE(row < max_rows, "row {} out of range [0, {})", row, max_rows);
//   PAGEDKV_CHECK_FORMAT(end <= size, "'{}': tensor '{}' ends at {}, past {}", path, name, ...);
//
// Python mapping (python/bindings): InvalidArgument -> ValueError, OutOfRange -> IndexError,
// StateError -> RuntimeError, CapacityError -> pagedkv.CapacityError (a RuntimeError),
// FormatError -> pagedkv.FormatError (a ValueError), InternalError -> AssertionError.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace pagedkv {

// Base of every error pagedkv throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A value is invalid regardless of state (negative count, wrong shape, unknown name...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// An index or id is outside the valid range (row, column, page id, group id...).
class OutOfRange : public Error {
 public:
  using Error::Error;
};

// The call is not allowed in the object's current state (double free, appending to a
// finished request, resetting a cache while pages are held...).
class StateError : public Error {
 public:
  using Error::Error;
};

// The request is valid but there is not enough room (more pages than are free or exist).
class CapacityError : public Error {
 public:
  using Error::Error;
};

// A file's contents break its format (a safetensors header, a model directory): the message
// names the file and the part of it (tensor, field) that is wrong.
class FormatError : public Error {
 public:
  using Error::Error;
};

// An internal invariant does not hold: a bug in pagedkv, never the caller's fault.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void throw_invalid_argument(const std::string& msg);
[[noreturn]] void throw_out_of_range(const std::string& msg);
[[noreturn]] void throw_state_error(const std::string& msg);
[[noreturn]] void throw_capacity_error(const std::string& msg);
[[noreturn]] void throw_format_error(const std::string& msg);
[[noreturn]] void throw_internal_error(const char* file, int line, const std::string& msg);

// A failed check formats its message here, out of line and marked cold: the function making
// the check keeps only a compare, a branch and a call, not the formatting code, its stack
// frame and its register pressure. Arguments are passed by reference and formatted as given.
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_invalid_argument(
    fmt::format_string<Args...> format, Args&&... args) {
  throw_invalid_argument(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_out_of_range(fmt::format_string<Args...> format,
                                                              Args&&... args) {
  throw_out_of_range(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_state_error(fmt::format_string<Args...> format,
                                                             Args&&... args) {
  throw_state_error(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_capacity_error(fmt::format_string<Args...> format,
                                                                Args&&... args) {
  throw_capacity_error(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_format_error(fmt::format_string<Args...> format,
                                                              Args&&... args) {
  throw_format_error(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_internal_error(const char* file, int line,
                                                                fmt::format_string<Args...> format,
                                                                Args&&... args) {
  throw_internal_error(file, line, fmt::format(format, std::forward<Args>(args)...));
}
}  // namespace detail

}  // namespace pagedkv

#define PAGEDKV_CHECK_ARG(cond, ...)                         \
  do {                                                       \
    if (!(cond)) [[unlikely]]                                \
      ::pagedkv::detail::fail_invalid_argument(__VA_ARGS__); \
  } while (0)

#define PAGEDKV_CHECK_RANGE(cond, ...)                   \
  do {                                                   \
    if (!(cond)) [[unlikely]]                            \
      ::pagedkv::detail::fail_out_of_range(__VA_ARGS__); \
  } while (0)

#define PAGEDKV_CHECK_STATE(cond, ...)                  \
  do {                                                  \
    if (!(cond)) [[unlikely]]                           \
      ::pagedkv::detail::fail_state_error(__VA_ARGS__); \
  } while (0)

#define PAGEDKV_CHECK_CAPACITY(cond, ...)                  \
  do {                                                     \
    if (!(cond)) [[unlikely]]                              \
      ::pagedkv::detail::fail_capacity_error(__VA_ARGS__); \
  } while (0)

#define PAGEDKV_CHECK_FORMAT(cond, ...)                  \
  do {                                                   \
    if (!(cond)) [[unlikely]]                            \
      ::pagedkv::detail::fail_format_error(__VA_ARGS__); \
  } while (0)

#define PAGEDKV_ASSERT(cond, ...)                                              \
  do {                                                                         \
    if (!(cond)) [[unlikely]]                                                  \
      ::pagedkv::detail::fail_internal_error(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#ifdef NDEBUG
#define PAGEDKV_DCHECK(cond, ...) \
  do {                            \
  } while (0)
#else
#define PAGEDKV_DCHECK(cond, ...) PAGEDKV_ASSERT(cond, __VA_ARGS__)
#endif
