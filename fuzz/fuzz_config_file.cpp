// Fuzz target: the server's config file (server/config/config load_config_file, then
// Config::validate as start-up runs them). The input is the file (JSON with // comments), written to
// a scratch path. Documented errors: tsm::Error naming the key.
#include "common/error.h"
#include "config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  using namespace tsm::server;
  static const std::string path = fuzz::scratch_dir("config_file") + "/server.json";
  fuzz::write_file(path, fuzz::text(data, size));
  try {
    Config c = load_config_file(path);
    c.validate();
    (void)c.effective_tar_max_extracted_bytes();
    (void)c.effective_tar_max_member_bytes();
    (void)c.is_loopback();
  } catch (const Error&) {
  }
  return 0;
}
