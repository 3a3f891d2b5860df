// safetensors reading and writing, atomic files, snapshot directories and trainer state.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "train/checkpoint.h"

using namespace myelin;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("myelin-ckpt-" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

class RemoveTemporaries : public ::testing::Environment {
 public:
  void TearDown() override {
    fs::remove_all(fs::temp_directory_path() / ("myelin-ckpt-" + std::to_string(::getpid())));
  }
};
const auto* const remove_temporaries = ::testing::AddGlobalTestEnvironment(new RemoveTemporaries);

Tensor random_tensor(Shape s, uint32_t seed) {
  Tensor t = Tensor::empty(std::move(s));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 2.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = (i % 2 ? -1 : 1) * u(rng);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

// A header and data assembled by hand, the way another writer may lay them out.
std::string file_with_header(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string decode_error(const std::string& bytes) {
  try {
    decode_safetensors(bytes.data(), bytes.size(), "bad.safetensors");
  } catch (const DataError& e) {
    EXPECT_EQ(e.path(), "bad.safetensors");
    return e.what();
  }
  ADD_FAILURE() << "expected a DataError";
  return "";
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

}  // namespace

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  Tensor w = random_tensor(Shape{20, 1, 5, 5}, 1), b = random_tensor(Shape{20}, 2);
  Tensor ids = Tensor::empty(Shape{3}, DType::i64);
  ids.data_as<int64_t>()[0] = -7, ids.data_as<int64_t>()[2] = int64_t{1} << 40;
  Tensor empty = Tensor::empty(Shape{0, 4});
  std::string bytes =
      encode_safetensors({{"conv1.weight", w}, {"conv1.bias", b}, {"ids", ids}, {"nothing", empty}},
                         {{"network", "lenet"}});
  TensorFile f = decode_safetensors(bytes.data(), bytes.size(), "mem");
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_TRUE(same_bytes(*f.find("conv1.weight"), w));
  EXPECT_TRUE(same_bytes(*f.find("conv1.bias"), b));
  EXPECT_TRUE(same_bytes(*f.find("ids"), ids));
  EXPECT_EQ(f.find("nothing")->shape(), (Shape{0, 4}));
  EXPECT_EQ(f.metadata.at("network"), "lenet");
  EXPECT_EQ(f.find("absent"), nullptr);
}

TEST(Safetensors, LayoutIsTheStandardOne) {
  Tensor b = random_tensor(Shape{3}, 3);
  std::string bytes = encode_safetensors({{"fc.bias", b}}, {{"format", "myelin"}});
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(bytes.size(), 8 + n + 12);
  EXPECT_EQ((8 + n) % 8, 0u) << "tensor data starts 8-byte aligned";
  json h = json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["fc.bias"]["dtype"], "F32");
  EXPECT_EQ(h["fc.bias"]["shape"], json::array({3}));
  EXPECT_EQ(h["fc.bias"]["data_offsets"], json::array({0, 12}));
  EXPECT_EQ(h["__metadata__"]["format"], "myelin");
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, b.data(), 12), 0);
}

TEST(Safetensors, ReadsFilesLaidOutByOtherWriters) {
  // Keys in another order, whitespace, metadata last, tensors stored out of name order, F16.
  std::string header =
      R"({ "b" : {"data_offsets":[0,4], "shape":[2], "dtype":"F16"},)"
      R"( "a": {"shape":[1,1],"dtype":"F32","data_offsets":[4,8]}, "__metadata__":{"format":"pt"}}  )";
  std::string data("\x00\x3c\x00\xc0", 4);  // f16 1.0, -2.0
  float one_half = 0.5f;
  data.append(reinterpret_cast<const char*>(&one_half), 4);
  std::string bytes = file_with_header(header, data);
  TensorFile f = decode_safetensors(bytes.data(), bytes.size(), "pt.safetensors");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "b");  // data order
  EXPECT_EQ(f.find("b")->dtype(), DType::f16);
  EXPECT_EQ(f.find("a")->f32()[0], 0.5f);
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

TEST(Safetensors, RejectsBadFilesWithPathAndOffset) {
  EXPECT_NE(decode_error("abc").find("at byte 0: not a safetensors file"), std::string::npos);
  EXPECT_NE(decode_error("\x89PNG\r\n\x1a\n0000000000000000").find("not a safetensors file"),
            std::string::npos);
  EXPECT_NE(decode_error(file_with_header("[1, 2]", "")).find("not a safetensors"),
            std::string::npos);
  std::string bad_json = decode_error(file_with_header("{\"a\": {\"dtype\": F32}}", ""));
  EXPECT_NE(bad_json.find("not valid JSON"), std::string::npos) << bad_json;
  EXPECT_NE(bad_json.find("at byte 24"), std::string::npos) << bad_json;  // the F, 8 + 16
  auto entry = [](const std::string& e, size_t data = 8) {
    return file_with_header("{\"t\": " + e + "}", std::string(data, '\x01'));
  };
  EXPECT_NE(decode_error(entry(R"({"dtype":"F64","shape":[1],"data_offsets":[0,8]})"))
                .find("unsupported dtype 'F64'"),
            std::string::npos);
  EXPECT_NE(decode_error(entry(R"({"dtype":"Q4","shape":[2],"data_offsets":[0,8]})")).find("'t'"),
            std::string::npos);
  std::string past = decode_error(entry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"));
  EXPECT_NE(past.find("run past the data section of 8 bytes"), std::string::npos) << past;
  EXPECT_NE(decode_error(entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"))
                .find("needs 3 elements"),
            std::string::npos);
  EXPECT_NE(decode_error(entry(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"))
                .find("non-negative"),
            std::string::npos);
  EXPECT_NE(decode_error(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"))
                .find("begin after"),
            std::string::npos);
  EXPECT_NE(decode_error(entry(R"({"dtype":"F32","shape":[4294967296,4294967296],)"
                               R"("data_offsets":[0,8]})"))
                .find("too large"),
            std::string::npos);
  std::string overlap =
      decode_error(file_with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    std::string(12, '\0')));
  EXPECT_NE(overlap.find("'x' and 'y' overlap"), std::string::npos) << overlap;
  EXPECT_NE(decode_error(file_with_header(R"({"__metadata__":{"n":3}})", "")).find("not a string"),
            std::string::npos);
}

TEST(Safetensors, FileErrorsNameThePath) {
  fs::path d = temp_dir("missing");
  try {
    read_safetensors((d / "nope.safetensors").string());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.safetensors"), std::string::npos);
  }
  write_bytes(d / "weights.txt", "these are not weights\n");
  EXPECT_THROW(read_safetensors((d / "weights.txt").string()), DataError);
}

TEST(AtomicWrite, ReplacesContentsAndLeavesNoTemporaries) {
  fs::path d = temp_dir("atomic");
  write_file_atomic((d / "state.json").string(), "first");
  write_file_atomic((d / "state.json").string(), "second");
  std::ifstream in(d / "state.json");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(s, "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(d), {}), 1);
  try {
    write_file_atomic((d / "no-such-dir" / "x").string(), "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-dir"), std::string::npos) << e.what();
  }
}

TEST(Checkpoints, SnapshotsLatestLinkAndPruning) {
  fs::path run = temp_dir("run");
  Checkpoint c;
  c.state.network = "lenet";
  c.state.recipe.solver = "adam";
  c.state.recipe.milestones = {100, 200};
  c.state.recipe.mean = {33.3};
  c.state.options = {{"data", "fashion-mnist"}};
  c.state.seed = 77;
  for (int64_t it : {100, 200, 300, 400}) {
    c.state.iteration = it;
    c.state.epoch = it / 150, c.state.batch_in_epoch = it % 150, c.state.micro_batches = 2 * it;
    c.weights.tensors = {{"w", random_tensor(Shape{4, 5}, static_cast<uint32_t>(it))}};
    c.solver.tensors = {{"w.opt0", random_tensor(Shape{4, 5}, 9)}};
    std::string dir = save_checkpoint(run.string(), c, 2);
    EXPECT_EQ(fs::path(dir).filename(), "iter-000" + std::to_string(it));
  }
  std::vector<std::string> left = list_checkpoints(run.string());
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(fs::path(left[0]).filename(), "iter-000300");
  EXPECT_EQ(fs::read_symlink(run / "checkpoints" / "latest"), "iter-000400");
  for (const fs::path& p : {run, run / "checkpoints", run / "checkpoints" / "iter-000400"})
    EXPECT_EQ(fs::path(find_checkpoint(p.string())).filename(), "iter-000400") << p;
  Checkpoint back = load_checkpoint(find_checkpoint(run.string()));
  EXPECT_EQ(back.state.iteration, 400);
  EXPECT_EQ(back.state.epoch, 2);
  EXPECT_EQ(back.state.batch_in_epoch, 100);
  EXPECT_EQ(back.state.micro_batches, 800);
  EXPECT_EQ(back.state.seed, 77u);
  EXPECT_EQ(back.state.recipe.solver, "adam");
  EXPECT_EQ(back.state.recipe.milestones, (std::vector<int64_t>{100, 200}));
  EXPECT_EQ(back.state.recipe.mean, (std::vector<double>{33.3}));
  EXPECT_EQ(back.state.options["data"], "fashion-mnist");
  EXPECT_TRUE(same_bytes(*back.weights.find("w"), *c.weights.find("w")));
  EXPECT_TRUE(same_bytes(*back.solver.find("w.opt0"), *c.solver.find("w.opt0")));
  // Re-saving the same iteration (a resumed run) replaces the snapshot.
  c.state.iteration = 400;
  save_checkpoint(run.string(), c, 0);
  EXPECT_EQ(list_checkpoints(run.string()).size(), 2u);
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    EXPECT_NE(e.path().filename().string()[0], '.') << "temporary left: " << e.path();
}

TEST(Checkpoints, MissingOrCorruptStateIsReported) {
  fs::path run = temp_dir("corrupt");
  EXPECT_THROW(find_checkpoint(run.string()), UsageError);
  Checkpoint c;
  c.state.iteration = 5;
  std::string dir = save_checkpoint(run.string(), c, 3);
  write_bytes(fs::path(dir) / "trainer.json", "{\"format\": \"myelin-trainer-state\", \"iter");
  try {
    load_checkpoint(dir);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("trainer.json"), std::string::npos) << e.what();
  }
  write_bytes(fs::path(dir) / "trainer.json", R"({"format": "myelin-trainer-state"})");
  try {
    load_checkpoint(dir);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("'iteration' is missing"), std::string::npos) << e.what();
  }
}
