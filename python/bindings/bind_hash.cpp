#include "bindings.h"

namespace pagedkv::python {

void bind_hash(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the hash component

}  // namespace pagedkv::python
