#include "http/tls_context.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace tsm::server {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2: ECDHE key exchange and AEAD ciphers only (Mozilla's "intermediate" list without DHE).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// TLS 1.3: every suite is AEAD with (EC)DHE; named so that a changed OpenSSL default cannot widen it.
constexpr const char* kTls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";

/// Throws the one-line error for a file that is not a readable regular file.
void require_readable(const char* what, const std::string& path) {
  std::error_code ec;
  if (path.empty()) throw Error(std::string(what) + ": no file given");
  if (!std::filesystem::exists(path, ec)) throw Error(std::string(what) + " '" + path + "': no such file");
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(std::string(what) + " '" + path + "': not a regular file");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(std::string(what) + " '" + path + "': cannot read: " + std::strerror(errno));
  std::fclose(f);
}

CertInfo describe(SSL_CTX* h) {
  CertInfo info;
  X509* x = SSL_CTX_get0_certificate(h);
  if (!x) return info;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(x, EVP_sha256(), md, &n) == 1) {
    static const char* hex = "0123456789ABCDEF";
    for (unsigned int i = 0; i < n; ++i) {
      if (i) info.sha256 += ':';
      info.sha256 += hex[md[i] >> 4];
      info.sha256 += hex[md[i] & 15];
    }
  }
  char name[512];
  if (X509_NAME_oneline(X509_get_subject_name(x), name, sizeof name)) info.subject = name;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
      char* p = nullptr;
      long len = BIO_get_mem_data(b, &p);
      if (p && len > 0) info.not_after.assign(p, static_cast<size_t>(len));
    }
    BIO_free(b);
  }
  if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
    spdlog::warn("TLS certificate {} expired on {}: clients will refuse it", info.subject, info.not_after);
  return info;
}

}  // namespace

std::shared_ptr<ssl::context> make_server_tls_context(const std::string& cert_file, const std::string& key_file,
                                                      CertInfo* info) {
  require_readable("TLS certificate file", cert_file);
  require_readable("TLS key file", key_file);
  // OpenSSL's per-thread error queue is left empty whatever happens: this may run on an I/O thread
  // (SIGHUP), where a stale entry would be taken for the error of a later TLS read.
  struct ClearErrors {
    ~ClearErrors() { ERR_clear_error(); }
  } clear_errors;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  SSL_CTX_set_options(h, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1 || SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(h, kTls13Suites) != 1 || SSL_CTX_set1_groups_list(h, kGroups) != 1)
    throw Error("TLS: this OpenSSL does not support the required protocol policy (TLS 1.2+, ECDHE, AEAD)");
  // An encrypted key must not make the server prompt on a terminal: no passphrase, so it fails.
  ctx->set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); });
  // The key first: loaded after it, a certificate of another key leaves no key set (OpenSSL drops
  // it), which the check below names as a mismatch.
  try {
    ctx->use_private_key_file(key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    throw Error("TLS key file '" + key_file + "': not an unencrypted PEM private key (" + e.code().message() + ")");
  }
  try {
    ctx->use_certificate_chain_file(cert_file);
  } catch (const boost::system::system_error& e) {
    throw Error("TLS certificate file '" + cert_file + "': not a PEM certificate chain (" + e.code().message() + ")");
  }
  if (SSL_CTX_check_private_key(h) != 1)
    throw Error("TLS key file '" + key_file + "' does not belong to the certificate in '" + cert_file + "'");
  CertInfo ci = describe(h);
  if (info) *info = std::move(ci);
  return ctx;
}

TlsContextStore::TlsContextStore(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {
  ctx_.store(make_server_tls_context(cert_file_, key_file_, &start_info_));
}

bool TlsContextStore::reload() {
  std::lock_guard lk(reload_mu_);
  try {
    CertInfo info;
    auto fresh = make_server_tls_context(cert_file_, key_file_, &info);
    ctx_.store(std::move(fresh));
    spdlog::info("TLS certificate reloaded: {} sha256 {} (expires {}); new connections use it", info.subject,
                 info.sha256, info.not_after);
    return true;
  } catch (const std::exception& e) {
    spdlog::error("TLS certificate reload failed, keeping the current certificate: {}", e.what());
    return false;
  }
}

}  // namespace tsm::server
