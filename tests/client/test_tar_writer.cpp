// write_tar: the archive extracts with the system `tar` to the same files (nested, long paths via
// the ustar prefix, sizes on and off 512-byte boundaries); bad inputs are errors, never cut.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "lib/tar_writer.h"

using tsm::client::write_tar;
namespace fs = std::filesystem;

namespace {
fs::path fresh(const std::string& n) {
  auto d = fs::temp_directory_path() / ("tsm_tar_" + n + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST(TarWriter, SystemTarExtractsTheSameFiles) {
  auto root = fresh("rt");
  auto src = root / "src";
  const std::string deep = std::string(60, 'd') + "/" + std::string(60, 'e') + "/" + std::string(70, 'f') + ".bin";
  std::map<std::string, std::string> files = {
      {"config.json", "{\"n_embd\": 64}"},
      {"empty.txt", ""},
      {"block.bin", std::string(512, 'b')},
      {"sub/odd.bin", std::string(1000, 'o')},
      {deep, std::string(3, 'x')},  // > 100 characters: needs the ustar prefix field
  };
  for (const auto& [rel, data] : files) {
    fs::create_directories((src / rel).parent_path());
    tsm::write_file_atomic((src / rel).string(), data);
  }
  auto st = write_tar(src.string(), (root / "a.tar").string());
  EXPECT_EQ(st.files, files.size());
  EXPECT_EQ(st.bytes, fs::file_size(root / "a.tar"));
  EXPECT_EQ(st.bytes % 512, 0u);
  fs::create_directories(root / "out");
  const std::string cmd = "tar -xf " + (root / "a.tar").string() + " -C " + (root / "out").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  for (const auto& [rel, data] : files) EXPECT_EQ(tsm::read_file((root / "out" / rel).string()), data) << rel;
  // Deterministic: the same tree gives the same bytes.
  write_tar(src.string(), (root / "b.tar").string());
  EXPECT_EQ(tsm::read_file((root / "a.tar").string()), tsm::read_file((root / "b.tar").string()));
  fs::remove_all(root);
}

TEST(TarWriter, RejectsWhatUstarCannotHold) {
  auto root = fresh("bad");
  EXPECT_THROW(write_tar((root / "missing").string(), (root / "x.tar").string()), tsm::Error);
  auto src = root / "src";
  fs::create_directories(src);
  tsm::write_file_atomic((src / std::string(150, 'n')).string(), "x");  // one 150-char name: no '/' to split at
  EXPECT_THROW(write_tar(src.string(), (root / "x.tar").string()), tsm::Error);
  fs::remove_all(root);
}
