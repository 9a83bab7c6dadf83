#include "bindings.h"

namespace pagedkv::python {

void bind_attention(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the attention component

}  // namespace pagedkv::python
