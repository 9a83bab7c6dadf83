#include "bindings.h"

namespace pagedkv::python {

void bind_kv_cache(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the kv_cache component

}  // namespace pagedkv::python
