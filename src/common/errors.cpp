#include "pagedkv/common/errors.h"

namespace pagedkv::detail {

// Out of line so that the throwing path does not bloat every inlined check.
void throw_invalid_argument(const std::string& msg) { throw InvalidArgument(msg); }
void throw_out_of_range(const std::string& msg) { throw OutOfRange(msg); }
void throw_state_error(const std::string& msg) { throw StateError(msg); }
void throw_capacity_error(const std::string& msg) { throw CapacityError(msg); }
void throw_format_error(const std::string& msg) { throw FormatError(msg); }
void throw_internal_error(const char* file, int line, const std::string& msg) {
  throw InternalError(fmt::format("internal invariant violated at {}:{}: {}", file, line, msg));
}

}  // namespace pagedkv::detail
