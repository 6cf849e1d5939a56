#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace micro::server {

// What the gRPC server presents: a certificate (chain) and its private key, PEM.
struct TlsIdentity {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string ca_file;  // automatic mode: the CA clients verify against; empty otherwise
};

// An operator's certificate and key (--tls-cert, --tls-key). INVALID_ARGUMENT naming the file
// when one cannot be read or parsed, or when the key is not the certificate's.
[[nodiscard]] Result<TlsIdentity> LoadTlsFiles(const std::string& cert_file,
                                               const std::string& key_file);

// The automatic mode: a CA in `dir` (ca.pem 0644, ca.key 0600), made on the first start and
// kept, and a server certificate for `hosts` signed by it (server.pem, server.key 0600), made
// again at every start so that it follows the listen address. ECDSA P-256, SHA-256; the CA is
// valid 10 years, the server certificate 2 years.
[[nodiscard]] Result<TlsIdentity> AutomaticTls(const std::string& dir,
                                               const std::vector<std::string>& hosts);

// The names a certificate for listen address `address` holds: localhost, 127.0.0.1, ::1, the
// address's host, this machine's hostname, every local interface address when the host is a
// wildcard (0.0.0.0, [::]), and `extra`. No duplicates.
std::vector<std::string> CertificateHosts(const std::string& address,
                                          const std::vector<std::string>& extra);

}  // namespace micro::server
