#include "pagedkv/kv_cache/token_tensor.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

template <class Void>
void TokenTensorT<Void>::check(std::string_view name) const {
  PAGEDKV_CHECK_ARG(static_cast<int>(dtype) <= static_cast<int>(DType::kFp8E4M3),
                    "{}.dtype has unknown code {} (max {})", name, static_cast<int>(dtype),
                    static_cast<int>(DType::kFp8E4M3));
  PAGEDKV_CHECK_ARG(rows >= 0, "{}.rows must be >= 0, got {}", name, rows);
  PAGEDKV_CHECK_ARG(heads > 0, "{}.heads must be > 0, got {}", name, heads);
  PAGEDKV_CHECK_ARG(dim > 0, "{}.dim must be > 0, got {}", name, dim);
  PAGEDKV_CHECK_ARG(rows == 0 || data != nullptr, "{} has {} rows but its data is null", name,
                    rows);
}

template void TokenTensorT<void>::check(std::string_view) const;
template void TokenTensorT<const void>::check(std::string_view) const;

}  // namespace pagedkv
