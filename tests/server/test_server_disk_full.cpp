// A full disk against a real server: --data-dir on a tmpfs of 8 MiB that the test mounts (root
// only; without root it skips, except under CI=true, where it fails). Uploads larger than the free
// space (streamed .npy, a .tar.gz that expands past it) answer 507 problem+json and leave no temp
// file, blob, model directory or row; deleting an upload makes room and the same upload is accepted;
// a job whose artifact cannot be stored fails saying the disk is full; with the disk filled to the
// last byte the database writes (reports, jobs, uploads) answer 507 while reads still work; once the
// space is freed everything is accepted again and the job's artifact is stored and verifies.
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

constexpr uint64_t kFsBytes = 8u << 20;

bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

/// A size-limited tmpfs mounted at `dir` for the test's lifetime (unmounted even when it fails).
struct TmpfsMount {
  std::string dir, error;
  bool mounted = false;
  TmpfsMount(std::string d, uint64_t bytes) : dir(std::move(d)) {
    fs::create_directories(dir);
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) == 0) mounted = true;
    else error = std::strerror(errno);
  }
  ~TmpfsMount() {
    if (mounted && ::umount2(dir.c_str(), 0) != 0) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

uint64_t free_bytes(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return 0;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

/// Writes zeros to `path` until `dir` has at most `keep` bytes free (keep = 0: until ENOSPC).
void fill_disk(const std::string& path, const std::string& dir, uint64_t keep) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  std::setvbuf(f, nullptr, _IONBF, 0);
  static const std::string zeros(64 << 10, '\0');
  for (;;) {
    const uint64_t free = free_bytes(dir);
    if (keep > 0 && free <= keep) break;
    const size_t n = static_cast<size_t>(keep > 0 ? std::min<uint64_t>(zeros.size(), free - keep) : zeros.size());
    if (std::fwrite(zeros.data(), 1, n, f) < n) break;  // ENOSPC: the disk is full
  }
  std::fclose(f);
}

/// A .npy of about `bytes` bytes (rows x 768 f32).
std::string npy_about(uint64_t bytes, uint32_t seed) {
  return npy_of(test_matrix(static_cast<int64_t>(std::max<uint64_t>(bytes / (768 * 4), 1)), 768, seed));
}

/// 507 with a problem+json body that says the disk is full.
void expect_disk_full(const HttpResult& r, const std::string& what) {
  EXPECT_EQ(r.status, 507) << what << ": " << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json") << what;
  if (r.header("content-type") != "application/problem+json") return;
  const json p = r.js();
  EXPECT_EQ(p.value("status", 0), 507) << what << ": " << r.body;
  EXPECT_EQ(p.value("reason", ""), "disk_full") << what << ": " << r.body;
  EXPECT_NE(p.value("detail", "").find("disk is full"), std::string::npos) << what << ": " << r.body;
}

/// Nothing half-written: no temp files, and exactly `blobs` blob files and `uploads` rows.
void expect_clean(const std::string& data, int64_t uploads, int blobs, const std::string& when) {
  EXPECT_EQ(count_files(data + "/tmp"), 0) << when;
  EXPECT_EQ(count_files(data + "/blobs"), blobs) << when;
  EXPECT_EQ(count_rows(data + "/tensorslm.db", "uploads"), uploads) << when;
  EXPECT_EQ(count_files(data + "/models"), 0) << when;
}

json report_body(int i) { return {{"model", "disk-full"}, {"tag", "v1"}, {"created_unix", 1700000000 + i}}; }

}  // namespace

TEST(ServerDiskFull, AnswersInsufficientStorageAndRecovers) {
  if (::geteuid() != 0) {
    if (under_ci()) FAIL() << "CI=true: the disk-full test must run as root (it mounts a tmpfs)";
    GTEST_SKIP() << "not root: cannot mount the small tmpfs this test needs";
  }
  TempDir tmp;
  TmpfsMount mnt(tmp.path + "/data", kFsBytes);
  ASSERT_TRUE(mnt.mounted) << "mount -t tmpfs -o size=" << kFsBytes << " " << mnt.dir << ": " << mnt.error
                           << (under_ci() ? " (CI=true: this test does not skip)" : "");
  const std::string data = mnt.dir;
  auto srv = std::make_unique<ServerProcess>(data);  // its log goes to tmp.path, off the small disk
  const uint16_t port = srv->port();

  // 1. A fits; B, larger than what is left, is a 507 that leaves nothing behind and frees its space.
  const uint64_t free0 = free_bytes(data);
  ASSERT_GT(free0, kFsBytes - (1u << 20));
  auto ra = POST(port, "/v1/uploads?name=a", npy_about(free0 * 4 / 10, 1));
  ASSERT_EQ(ra.status, 201) << ra.body;
  const std::string a = ra.js()["id"];
  const uint64_t free1 = free_bytes(data);
  const std::string b_bytes = npy_about(free1 + (512u << 10), 2);
  ASSERT_GT(b_bytes.size(), free1);
  expect_disk_full(POST(port, "/v1/uploads?name=b", b_bytes), "upload larger than the free space");
  expect_clean(data, 1, 1, "after the 507 upload");
  EXPECT_GE(free_bytes(data) + (64u << 10), free1) << "the refused upload's space was not given back";

  // 2. A .tar.gz that is small on the wire but expands past the free space: 507 during extraction.
  {
    const std::string src = tmp.path + "/bigtar";
    fs::create_directories(src + "/m");
    write_bytes(src + "/m/config.json", "{}");
    int rc = 0;
    sh("head -c " + std::to_string(free1 + (1u << 20)) + " /dev/zero > " + src + "/m/zeros.bin && tar -czf " + src +
           "/m.tar.gz -C " + src + " m",
       &rc);
    ASSERT_EQ(rc, 0);
    std::ifstream in(src + "/m.tar.gz", std::ios::binary);
    const std::string tgz((std::istreambuf_iterator<char>(in)), {});
    ASSERT_LT(tgz.size(), free1 / 4);
    expect_disk_full(POST(port, "/v1/uploads?name=m", tgz), "tar that expands past the free space");
    expect_clean(data, 1, 1, "after the 507 tar");
  }

  // 3. Deleting an upload makes room: the same B is accepted now.
  EXPECT_EQ(http_request(port, http::verb::delete_, "/v1/uploads/" + a).status, 204);
  expect_clean(data, 0, 0, "after DELETE");
  auto rb = POST(port, "/v1/uploads?name=b", b_bytes);
  ASSERT_EQ(rb.status, 201) << rb.body;
  const std::string b = rb.js()["id"];
  EXPECT_EQ(rb.js()["sha256"], sha256_hex(b_bytes));
  expect_clean(data, 1, 1, "after B");

  // 4. A job whose artifact cannot be stored fails, saying so; no artifact, no temp file.
  constexpr uint64_t kKeep = 256u << 10;  // room for the job's rows, not for its artifact
  fill_disk(data + "/filler-1", data, kKeep);
  const json job = {{"upload", b}, {"method", "tt-token"}, {"params", {{"shape", {8, 8, 12}}, {"ranks", {4, 4}}}}};
  auto rj = POST(port, "/v1/jobs?wait=120", job.dump());
  ASSERT_EQ(rj.status, 200) << rj.body;
  EXPECT_EQ(rj.js()["state"], "failed") << rj.body;
  EXPECT_NE(rj.js().value("error", "").find("disk is full"), std::string::npos) << rj.body;
  EXPECT_EQ(count_rows(data + "/tensorslm.db", "artifacts"), 0);
  expect_clean(data, 1, 1, "after the failed job");

  // 5. Full to the last byte: database writes are 507 too (SQLITE_FULL), reads still answer.
  fill_disk(data + "/filler-2", data, 0);
  int accepted = 0;
  HttpResult full;
  for (int i = 0; i < 64; ++i) {
    full = POST(port, "/v1/devices/pi-1/reports", report_body(i).dump(), {{"Content-Type", "application/json"}});
    if (full.status != 201) break;
    ++accepted;  // the database file may hold a little slack
  }
  expect_disk_full(full, "report on a full disk");
  EXPECT_LT(accepted, 64);
  expect_disk_full(POST(port, "/v1/jobs", job.dump()), "job on a full disk");
  expect_disk_full(POST(port, "/v1/uploads?name=c", npy_about(64u << 10, 3)), "upload on a full disk");
  EXPECT_EQ(GET(port, "/healthz").status, 200);
  EXPECT_EQ(GET(port, "/v1/uploads/" + b).status, 200);
  EXPECT_EQ(GET(port, "/v1/reports?device=pi-1").js()["reports"].size(), size_t(accepted));
  expect_clean(data, 1, 1, "with the disk full");

  // 6. Space freed: everything is accepted again, and the job's artifact is stored and verifies.
  fs::remove(data + "/filler-1");
  fs::remove(data + "/filler-2");
  auto rr = POST(port, "/v1/devices/pi-1/reports", report_body(100).dump(), {{"Content-Type", "application/json"}});
  EXPECT_EQ(rr.status, 201) << rr.body;
  auto rc = POST(port, "/v1/uploads?name=c", npy_about(64u << 10, 3));
  EXPECT_EQ(rc.status, 201) << rc.body;
  auto ok = POST(port, "/v1/jobs?wait=120", job.dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(ok.js()["state"], "succeeded") << ok.body;
  const json art = ok.js()["result"]["artifact"];
  EXPECT_GT(art["size_bytes"].get<uint64_t>(), kKeep) << "the artifact would have fit: step 4 proved nothing";
  auto dl = GET(port, art["url"].get<std::string>());
  ASSERT_EQ(dl.status, 200);
  EXPECT_EQ(sha256_hex(dl.body), art["sha256"]);
  EXPECT_EQ(check_artifact_content(dl.body).state, ArtifactIntegrity::State::kVerified);
  EXPECT_EQ(count_files(data + "/tmp"), 0);
  std::printf("disk full: %llu bytes free at start, upload B %zu bytes (%llu free), %d report(s) fitted on the full disk, "
              "artifact %llu bytes (%llu were free when it failed)\n",
              static_cast<unsigned long long>(free0), b_bytes.size(), static_cast<unsigned long long>(free1), accepted,
              static_cast<unsigned long long>(art["size_bytes"].get<uint64_t>()), static_cast<unsigned long long>(kKeep));
  EXPECT_EQ(srv->stop(), 0) << srv->log();
  if (HasFailure()) ADD_FAILURE() << "server log:\n" << srv->log();
}

namespace {

/// `dir` bind-mounted read-only onto itself for the test's lifetime: writes under it fail with
/// EROFS, a storage failure that is not a full disk.
struct ReadOnlyBind {
  std::string dir, error;
  bool mounted = false;
  explicit ReadOnlyBind(std::string d) : dir(std::move(d)) {
    fs::create_directories(dir);
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      error = std::strerror(errno);
      return;
    }
    mounted = true;
    if (::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) error = std::strerror(errno);
  }
  void release() {
    if (mounted && ::umount2(dir.c_str(), 0) != 0) ::umount2(dir.c_str(), MNT_DETACH);
    mounted = false;
  }
  ~ReadOnlyBind() { release(); }
};

}  // namespace

// A write that fails for a reason other than space (here EROFS on the models directory) is the
// server's fault: 500 problem+json with reason storage_error, nothing kept (no temp file, blob, model
// directory or row); once the directory is writable again the same upload is accepted.
TEST(ServerStorageError, AnUnwritableModelsDirectoryIsA500AndNothingIsKept) {
  if (::geteuid() != 0) {
    if (under_ci()) FAIL() << "CI=true: the storage-error test must run as root (it bind-mounts a directory read-only)";
    GTEST_SKIP() << "not root: cannot bind-mount the read-only directory this test needs";
  }
  TempDir tmp;
  const std::string data = tmp.path + "/data";
  auto srv = std::make_unique<ServerProcess>(data);
  const uint16_t port = srv->port();
  const std::string tar = fixture_tar(tmp.path, "gpt2-man");
  const std::map<std::string, std::string> kTar = {{"Content-Type", "application/x-tar"}};
  {
    ReadOnlyBind ro(data + "/models");
    ASSERT_TRUE(ro.mounted && ro.error.empty()) << "read-only bind mount of " << ro.dir << ": " << ro.error;
    const auto r = POST(port, "/v1/uploads?name=gpt2-man", tar, kTar);
    EXPECT_EQ(r.status, 500) << r.body;
    ASSERT_EQ(r.header("content-type"), "application/problem+json") << r.body;
    const json p = r.js();
    EXPECT_EQ(p.value("reason", ""), "storage_error") << r.body;
    EXPECT_NE(p.value("detail", "").find("cannot move the extracted model"), std::string::npos) << r.body;
    EXPECT_EQ(GET(port, "/healthz").status, 200);
    ro.release();
    expect_clean(data, 0, 0, "after the 500");
  }
  const auto ok = POST(port, "/v1/uploads?name=gpt2-man", tar, kTar);
  ASSERT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(count_rows(data + "/tensorslm.db", "uploads"), 1);
  EXPECT_EQ(count_files(data + "/tmp"), 0);
  EXPECT_EQ(srv->stop(), 0) << srv->log();
  if (HasFailure()) ADD_FAILURE() << "server log:\n" << srv->log();
}
