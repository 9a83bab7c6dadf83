// Argument and result conversions shared by the binding files, one helper per concept:
// hash algorithms (a name or a pagedkv.HashAlgorithm), digests (bytes of the algorithm's size)
// page ids per group (any sequence of integer sequences; PageIds are read in place) and finish
// reasons.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/scheduler/sequence.h"

namespace pagedkv::python {

// "xxh3_128", "sha256" or a pagedkv.HashAlgorithm; ValueError for an unknown name, TypeError
// for anything else.
HashAlgorithm hash_algorithm_arg(const pybind11::handle& value);

// The digest of `h` as bytes: digest_size(algo) long (16 for xxh3_128, 32 for sha256).
pybind11::bytes digest_bytes(const PageHash& h, HashAlgorithm algo);
// None for an empty optional.
pybind11::object optional_digest_bytes(const std::optional<PageHash>& h, HashAlgorithm algo);

// [groups][pages] from a sequence with one integer sequence per group (TypeError naming `name`
// otherwise; values through IntSequence).
std::vector<std::vector<PageId>> group_pages_arg(pybind11::handle obj, const char* name);
// Same; None gives nullopt.
std::optional<std::vector<std::vector<PageId>>> optional_group_pages_arg(pybind11::handle obj,
                                                                         const char* name);

// One-dimensional page ids (IntSequence<int32_t>, ValueError unless 1-D).
std::vector<PageId> page_ids_arg(pybind11::handle obj, const char* name);

// A finish reason's vLLM name ("stop", "length", "abort"), or nullopt (None in Python).
std::optional<std::string> reason_name(std::optional<FinishReason> r);

}  // namespace pagedkv::python
