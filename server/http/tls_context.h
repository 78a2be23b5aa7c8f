// TLS for the HTTP front: the server's OpenSSL context, built from a PEM certificate chain and a
// PEM private key with the protocol policy fixed here (TLS 1.2 and 1.3 only; TLS 1.2 with ECDHE key
// exchange and AEAD ciphers only; no compression, no renegotiation), and the holder of the context
// that new connections get. Invariant: current() is never null and is always a complete context
// whose key matches its certificate; reload() swaps in a new one atomically or leaves the old one,
// and a connection keeps the context it was accepted with (it holds its own shared_ptr).
#pragma once
#include <boost/asio/ssl/context.hpp>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace tsm::server {

/// The leaf certificate a context serves, for the log.
struct CertInfo {
  std::string sha256;     ///< SHA-256 fingerprint of the DER certificate, "AB:CD:..."
  std::string subject;    ///< one-line subject ("/CN=...")
  std::string not_after;  ///< expiry as OpenSSL prints it ("Jan  2 03:04:05 2026 GMT")
};

/// A server context with the policy above, holding cert_file (leaf first, then intermediates) and
/// key_file. Throws tsm::Error, one line naming the file at fault, when a file cannot be read, is
/// not PEM of the right kind, or the key does not belong to the certificate.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const std::string& cert_file,
                                                                   const std::string& key_file,
                                                                   CertInfo* info = nullptr);

class TlsContextStore {
 public:
  /// Loads the files once; throws as make_server_tls_context does (a bad start fails the start).
  TlsContextStore(std::string cert_file, std::string key_file);
  /// The context for a connection accepted now.
  std::shared_ptr<boost::asio::ssl::context> current() const { return ctx_.load(); }
  const CertInfo& info_at_start() const { return start_info_; }
  /// Reads both files again into a new context and makes it current; on any error logs it and
  /// keeps the current one. Returns whether it swapped. Safe from any thread.
  bool reload();

 private:
  std::string cert_file_, key_file_;
  CertInfo start_info_;
  std::atomic<std::shared_ptr<boost::asio::ssl::context>> ctx_;
  std::mutex reload_mu_;  // one reload at a time (two SIGHUPs in a row)
};

}  // namespace tsm::server
