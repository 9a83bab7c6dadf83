#include "pagedkv/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

#include "model/model_test_util.h"

namespace pagedkv {
namespace {

using testing::expect_error;
using testing::read_bytes;
using testing::TempDir;
using testing::write_raw_safetensors;

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

struct Sample {
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.125f};
  std::vector<uint16_t> f16 = {0x3e00, 0xc000, 0x0001};  // 1.5, -2, smallest subnormal
  std::vector<uint16_t> bf16 = {0x3fc0, 0x4049};         // 1.5, ~3.14
  std::vector<float> scalar = {42.0f};
  std::vector<float> empty;

  std::vector<TensorToWrite> tensors() const {
    // Deliberately not in name order: the file keeps the given order.
    return {{"zeta.weight", DType::kFloat32, {2, 3}, bytes_of(f32)},
            {"alpha.half", DType::kFloat16, {3}, bytes_of(f16)},
            {"mid.bf16", DType::kBFloat16, {1, 2}, bytes_of(bf16)},
            {"scalar", DType::kFloat32, {}, bytes_of(scalar)},
            {"empty", DType::kFloat32, {0, 4}, bytes_of(empty)}};
  }
};

TEST(Safetensors, RoundTripKeepsOrderDtypesShapesBytesAndMetadata) {
  TempDir dir;
  const Sample s;
  const std::vector<TensorToWrite> in = s.tensors();
  write_safetensors(dir.file("a.safetensors"), in, {{"format", "pt"}, {"note", "x"}});

  const SafetensorsFile f = SafetensorsFile::open(dir.file("a.safetensors"));
  ASSERT_EQ(f.tensors().size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const TensorView& t = f.tensors()[i];
    EXPECT_EQ(t.name, in[i].name);
    EXPECT_EQ(t.dtype, in[i].dtype);
    EXPECT_EQ(t.shape, in[i].shape);
    ASSERT_EQ(t.data.size(), in[i].data.size());
    EXPECT_TRUE(t.data.empty() || std::memcmp(t.data.data(), in[i].data.data(), t.data.size()) == 0)
        << t.name;
    EXPECT_EQ(f.find(in[i].name), &t);
  }
  EXPECT_EQ(f.tensors()[3].numel(), 1);
  EXPECT_EQ(f.tensors()[4].numel(), 0);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
}

TEST(Safetensors, HeaderIsSortedJsonPaddedToEightBytes) {
  TempDir dir;
  const Sample s;
  write_safetensors(dir.file("a.safetensors"), s.tensors());
  const std::string bytes = read_bytes(dir.file("a.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_LT(header.find("\"alpha.half\""), header.find("\"empty\""));
  EXPECT_LT(header.find("\"scalar\""), header.find("\"zeta.weight\""));
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);  // none given, none written
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(header.size() - last - 1, 8u);
  EXPECT_EQ(bytes.size(), 8 + n + 24 + 6 + 4 + 4 + 0);
}

TEST(Safetensors, WritingTwiceGivesIdenticalBytes) {
  TempDir dir;
  const Sample s;
  write_safetensors(dir.file("a.safetensors"), s.tensors(), {{"format", "pt"}});
  write_safetensors(dir.file("b.safetensors"), s.tensors(), {{"format", "pt"}});
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), read_bytes(dir.file("b.safetensors")));
}

TEST(Safetensors, MovedFileKeepsItsViewsValid) {
  TempDir dir;
  const Sample s;
  write_safetensors(dir.file("a.safetensors"), s.tensors());
  SafetensorsFile f = SafetensorsFile::open(dir.file("a.safetensors"));
  const TensorView* before = f.find("zeta.weight");
  SafetensorsFile g = std::move(f);
  const TensorView* after = g.find("zeta.weight");
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->data.data(), before->data.data());
  float x = 0;
  std::memcpy(&x, after->data.data() + 8, sizeof(float));
  EXPECT_EQ(x, 3.25f);
}

TEST(Safetensors, BadTensorsAreRejectedAndNoFileIsLeft) {
  TempDir dir;
  const std::vector<float> three = {1, 2, 3};
  const std::string path = dir.file("bad.safetensors");
  const std::vector<TensorToWrite> wrong_size = {{"w", DType::kFloat32, {2, 2}, bytes_of(three)}};
  expect_error<InvalidArgument>([&] { write_safetensors(path, wrong_size); },
                                {"'w'", "12 bytes", "needs 16"});
  const std::vector<TensorToWrite> twice = {{"w", DType::kFloat32, {3}, bytes_of(three)},
                                            {"w", DType::kFloat32, {3}, bytes_of(three)}};
  expect_error<InvalidArgument>([&] { write_safetensors(path, twice); }, {"'w'", "twice"});
  const std::vector<TensorToWrite> int8 = {{"q", DType::kInt8, {12}, bytes_of(three)}};
  expect_error<InvalidArgument>([&] { write_safetensors(path, int8); }, {"int8"});
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// ---- loader errors (rule 51): each names the file and, where there is one, the tensor ----

class SafetensorsErrors : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("m.safetensors"); }
  void expect_format_error(std::initializer_list<std::string> parts) {
    expect_error<FormatError>([&] { SafetensorsFile::open(path()); }, parts);
    expect_error<FormatError>([&] { SafetensorsFile::open(path()); }, {path()});
  }
  TempDir dir_;
};

TEST_F(SafetensorsErrors, FileShorterThanTheLengthPrefix) {
  testing::write_bytes(path(), std::string("\x08\x00\x00\x00\x00", 5));
  expect_format_error({"5 bytes", "8-byte"});
}

TEST_F(SafetensorsErrors, HeaderLengthPastTheEndOfFile) {
  write_raw_safetensors(path(), "{}      ", 0, 1000);
  expect_format_error({"header length 1000", "16-byte file"});
}

TEST_F(SafetensorsErrors, HeaderThatIsNotJson) {
  write_raw_safetensors(path(), "{\"w\": [1, 2", 0);
  expect_format_error({"not valid JSON"});
}

TEST_F(SafetensorsErrors, HeaderThatIsNotAnObject) {
  write_raw_safetensors(path(), "[1, 2, 3]", 0);
  expect_format_error({"JSON object", "[1,2,3]"});
}

TEST_F(SafetensorsErrors, UnknownDtype) {
  write_raw_safetensors(path(), R"({"w.int":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  expect_format_error({"'w.int'", "I64", "F32, F16 or BF16"});
}

TEST_F(SafetensorsErrors, NegativeOrNonIntegerShape) {
  write_raw_safetensors(path(), R"({"neg":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0);
  expect_format_error({"'neg'", "non-negative"});
  write_raw_safetensors(path(), R"({"flt":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4);
  expect_format_error({"'flt'", "shape"});
  write_raw_safetensors(path(), R"({"num":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16);
  expect_format_error({"'num'", "shape"});
}

TEST_F(SafetensorsErrors, OffsetsThatAreNotABeginEndPair) {
  write_raw_safetensors(path(), R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4);
  expect_format_error({"'w'", "data_offsets"});
  write_raw_safetensors(path(), R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8);
  expect_format_error({"'w'", "begin > end"});
}

TEST_F(SafetensorsErrors, SizeThatDisagreesWithTheShape) {
  write_raw_safetensors(path(), R"({"w.bias":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})",
                        8);
  expect_format_error({"'w.bias'", "8 bytes", "needs 6"});
}

TEST_F(SafetensorsErrors, OffsetsPastTheBufferEnd) {
  write_raw_safetensors(path(), R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12);
  expect_format_error({"'w'", "past the 12-byte buffer"});
}

TEST_F(SafetensorsErrors, OverlappingTensors) {
  write_raw_safetensors(path(),
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12);
  expect_format_error({"'b'", "overlap"});
}

TEST_F(SafetensorsErrors, HoleBetweenTensors) {
  write_raw_safetensors(path(),
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                        20);
  expect_format_error({"'b'", "hole of 4 bytes"});
}

TEST_F(SafetensorsErrors, BytesAfterTheLastTensor) {
  write_raw_safetensors(path(), R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12);
  expect_format_error({"'a'", "end at byte 8 of the 12-byte buffer"});
}

TEST_F(SafetensorsErrors, MetadataThatIsNotAMapOfStrings) {
  write_raw_safetensors(path(), R"({"__metadata__":{"n":3}})", 0);
  expect_format_error({"__metadata__", "'n'"});
}

TEST_F(SafetensorsErrors, MissingFileIsInvalidArgument) {
  expect_error<InvalidArgument>([&] { SafetensorsFile::open(dir_.file("nope.safetensors")); },
                                {"nope.safetensors"});
}

}  // namespace
}  // namespace pagedkv
