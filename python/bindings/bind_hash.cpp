// Python registration of the hash component: HashAlgorithm, PageHasher, Request.
// Digests cross the boundary as raw bytes (16 for xxh3_128, 32 for sha256).
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "arguments.h"
#include "bindings.h"
#include "int_sequence.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/hash/request.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

using MmTuple = std::tuple<std::string, int64_t, int64_t>;  // (content_hash, offset, length)

std::vector<MultiModalInput> to_mm_inputs(const std::optional<std::vector<MmTuple>>& in) {
  std::vector<MultiModalInput> out;
  if (!in) return out;
  out.reserve(in->size());
  for (const auto& [hash, offset, length] : *in) out.push_back({hash, offset, length});
  return out;
}

py::bytes hash_page(const PageHasher& hasher, const std::optional<py::bytes>& parent,
                    const std::vector<TokenId>& tokens, std::optional<int64_t> lora_id,
                    const std::optional<std::vector<MmTuple>>& mm_inputs,
                    const std::string& cache_salt) {
  PageHash parent_hash;
  if (parent) parent_hash = hasher.parse_digest(std::string(*parent));
  const std::vector<MultiModalInput> mm = to_mm_inputs(mm_inputs);
  PageExtraKeys keys{.lora_id = lora_id, .mm_inputs = {}, .cache_salt = cache_salt};
  for (const MultiModalInput& in : mm) keys.mm_inputs.push_back(&in);
  return digest_bytes(hasher.hash_page(parent ? &parent_hash : nullptr, tokens, keys),
                      hasher.algorithm());
}

std::shared_ptr<Request> make_request(std::string request_id, py::handle prompt,
                                      const std::optional<std::string>& cache_salt,
                                      std::optional<int64_t> lora_id,
                                      const std::optional<std::vector<MmTuple>>& mm_inputs,
                                      const py::object& hash_algorithm) {
  RequestOptions opts;
  opts.cache_salt = cache_salt.value_or("");
  opts.lora_id = lora_id;
  opts.mm_inputs = to_mm_inputs(mm_inputs);
  opts.hash_algorithm = hash_algorithm_arg(hash_algorithm);
  IntSequence<TokenId> tokens(prompt, "prompt_token_ids");
  tokens.require_ndim(1);
  return std::make_shared<Request>(std::move(request_id), std::move(tokens).release_vector(),
                                   std::move(opts));
}

}  // namespace

void bind_hash(py::module_& m) {
  py::enum_<HashAlgorithm> algo(m, "HashAlgorithm",
                                "Page hash algorithm; wherever one is expected, the strings "
                                "'xxh3_128' and 'sha256' are accepted too.");
  algo.value("xxh3_128", HashAlgorithm::kXxh3_128)
      .value("sha256", HashAlgorithm::kSha256)
      .def(py::init([](const std::string& name) { return parse_hash_algorithm(name); }),
           py::arg("name"))
      .def_property_readonly("digest_size", [](HashAlgorithm a) { return digest_size(a); });
  py::implicitly_convertible<py::str, HashAlgorithm>();
  m.attr("HASH_SPEC_VERSION") = kPageHashSpecVersion;

  py::class_<PageHasher>(m, "PageHasher",
                         "Chained page hashes of docs/hash-spec.md; digests are bytes.")
      .def(py::init([](const py::object& a) { return PageHasher(hash_algorithm_arg(a)); }),
           py::arg("algorithm") = "xxh3_128")
      .def_property_readonly(
          "algorithm",
          [](const PageHasher& h) { return std::string(hash_algorithm_name(h.algorithm())); })
      .def_property_readonly("digest_size", &PageHasher::digest_size)
      .def(
          "root", [](const PageHasher& h) { return digest_bytes(h.root(), h.algorithm()); },
          "The ROOT parent of page 0 (digest bytes).")
      .def("hash_page", &hash_page, py::arg("parent"), py::arg("tokens"),
           py::arg("lora_id") = py::none(), py::arg("mm_inputs") = py::none(),
           py::arg("cache_salt") = "",
           "Digest of one full page. parent: the previous page's digest, or None for page 0. "
           "mm_inputs: (content_hash, offset, length) tuples overlapping the page, in offset "
           "order. cache_salt: page 0 only.");

  py::class_<Request, std::shared_ptr<Request>>(m, "Request",
                                                "One inference request: tokens, cache keys and "
                                                "page hashes kept current as tokens arrive.")
      .def(py::init(&make_request), py::arg("request_id"), py::arg("prompt_token_ids"),
           py::arg("cache_salt") = py::none(), py::arg("lora_id") = py::none(),
           py::arg("mm_inputs") = py::none(), py::arg("hash_algorithm") = "xxh3_128")
      .def_property_readonly("request_id", &Request::request_id)
      .def_property_readonly("num_tokens", &Request::num_tokens)
      .def_property_readonly("num_prompt_tokens", &Request::num_prompt_tokens)
      .def_property_readonly("num_output_tokens", &Request::num_output_tokens)
      .def_property_readonly("all_token_ids",
                             [](const Request& r) {
                               auto t = r.all_token_ids();
                               return std::vector<TokenId>(t.begin(), t.end());
                             })
      .def_property_readonly("prompt_token_ids",
                             [](const Request& r) {
                               auto t = r.prompt_token_ids();
                               return std::vector<TokenId>(t.begin(), t.end());
                             })
      .def_property("num_computed_tokens", &Request::num_computed_tokens,
                    &Request::set_num_computed_tokens)
      .def_property_readonly("cache_salt", [](const Request& r) { return r.options().cache_salt; })
      .def_property_readonly("lora_id", [](const Request& r) { return r.options().lora_id; })
      .def_property_readonly("mm_inputs",
                             [](const Request& r) {
                               std::vector<MmTuple> out;
                               for (const auto& in : r.options().mm_inputs) {
                                 out.emplace_back(in.content_hash, in.offset, in.length);
                               }
                               return out;
                             })
      .def_property_readonly(
          "hash_algorithm",
          [](const Request& r) { return std::string(hash_algorithm_name(r.hasher().algorithm())); })
      .def_property_readonly("num_pages_hashed", &Request::num_pages_hashed)
      .def(
          "append_output_token_ids",
          [](Request& r, py::handle ids) {
            IntSequence<TokenId> tokens(ids, "token_ids");
            r.append_output_token_ids(tokens.require_ndim(1).span());
          },
          py::arg("token_ids"),
          "append_output_token_ids(token_ids: Sequence[int]) -> None: appends generated "
          "tokens; pages that fill are hashed at every tracked page size.")
      .def(
          "page_hashes",
          [](const Request& r, int32_t page_size) {
            py::list out;
            const HashAlgorithm a = r.hasher().algorithm();
            for (const PageHash& h : r.page_hashes(page_size)) out.append(digest_bytes(h, a));
            return out;
          },
          py::arg("page_size"), "Digests (bytes) of the full pages at page_size.")
      .def("verify", &Request::verify,
           "verify() -> None: re-hashes every tracked page and checks the invariants "
           "(AssertionError).")
      .def("__repr__", [](const Request& r) {
        return "Request(" + r.request_id() + ", tokens=" + std::to_string(r.num_tokens()) +
               ", computed=" + std::to_string(r.num_computed_tokens()) + ")";
      });
}

}  // namespace pagedkv::python
