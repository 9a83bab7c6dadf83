#include "arguments.h"

#include <string>

#include "int_sequence.h"

namespace py = pybind11;

namespace pagedkv::python {

HashAlgorithm hash_algorithm_arg(const py::handle& value) {
  if (py::isinstance<py::str>(value)) return parse_hash_algorithm(value.cast<std::string>());
  if (!py::isinstance<HashAlgorithm>(value)) {
    throw py::type_error("hash algorithm must be 'xxh3_128', 'sha256' or a HashAlgorithm, got " +
                         std::string(py::str(py::type::of(value))));
  }
  return value.cast<HashAlgorithm>();
}

py::bytes digest_bytes(const PageHash& h, HashAlgorithm algo) {
  return py::bytes(h.bytes(digest_size(algo)));
}

py::object optional_digest_bytes(const std::optional<PageHash>& h, HashAlgorithm algo) {
  if (!h) return py::none();
  return digest_bytes(*h, algo);
}

std::vector<PageId> page_ids_arg(py::handle obj, const char* name) {
  IntSequence<PageId> ids(obj, name);
  ids.require_ndim(1);
  return std::move(ids).release_vector();
}

std::vector<std::vector<PageId>> group_pages_arg(py::handle obj, const char* name) {
  if (py::isinstance<py::str>(obj) || !py::hasattr(obj, "__iter__")) {
    throw py::type_error(std::string(name) +
                         " must be a sequence with one page-id sequence per "
                         "group, got " +
                         std::string(py::str(py::type::of(obj))));
  }
  std::vector<std::vector<PageId>> out;
  for (py::handle group : obj) out.push_back(page_ids_arg(group, name));
  return out;
}

std::optional<std::vector<std::vector<PageId>>> optional_group_pages_arg(py::handle obj,
                                                                         const char* name) {
  if (obj.is_none()) return std::nullopt;
  return group_pages_arg(obj, name);
}

std::optional<std::string> reason_name(std::optional<FinishReason> r) {
  if (!r) return std::nullopt;
  return std::string(finish_reason_name(*r));
}

}  // namespace pagedkv::python
