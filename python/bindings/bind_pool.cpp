#include "bindings.h"

namespace pagedkv::python {

void bind_pool(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the pool component

}  // namespace pagedkv::python
