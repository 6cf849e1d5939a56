#include "server/tls.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "core/address.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::server {
namespace {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using Cert = std::unique_ptr<X509, Free>;
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Bio = std::unique_ptr<BIO, Free>;

constexpr int kCaDays = 3650;
constexpr int kServerDays = 730;

// The last OpenSSL error, for a message.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

Result<Cert> ParseCert(const std::string& pem, const std::string& what) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(
        fmt::format("{} holds no PEM certificate: {}", what, OpenSslError()));
  }
  return cert;
}

Result<Key> ParseKey(const std::string& pem, const std::string& what) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        fmt::format("{} holds no unencrypted PEM private key: {}", what, OpenSslError()));
  }
  return key;
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return absl::InternalError(
        fmt::format("cannot add the certificate extension {}: {}", value, OpenSslError()));
  }
  return absl::OkStatus();
}

// A certificate for `key` named `common_name`, signed by `issuer_key` (self-signed when
// `issuer` is null), with `extensions` (nid, value) added in order.
Result<Cert> MakeCert(EVP_PKEY* key, const std::string& common_name, X509* issuer,
                      EVP_PKEY* issuer_key, int days,
                      const std::vector<std::pair<int, std::string>>& extensions) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return absl::InternalError(OpenSslError());
  serial[0] &= 0x7f;  // positive
  std::unique_ptr<BIGNUM, Free> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // clocks a little behind
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("micro"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  X509* signer = issuer ? issuer : cert.get();
  for (const auto& [nid, value] : extensions) {
    if (Status s = AddExtension(cert.get(), signer, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return absl::InternalError(fmt::format("cannot sign a certificate: {}", OpenSslError()));
  }
  return cert;
}

Result<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError(fmt::format("cannot make a key: {}", OpenSslError()));
  return key;
}

bool IsIp(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// The CA of `dir`, made if missing.
Result<std::pair<Cert, Key>> LoadOrMakeCa(const std::string& dir) {
  const std::string cert_path = dir + "/ca.pem";
  const std::string key_path = dir + "/ca.key";
  auto cert_pem = auth::ReadSecretFile(cert_path);
  auto key_pem = auth::ReadSecretFile(key_path);
  if (cert_pem.ok() && key_pem.ok()) {
    auto cert = ParseCert(*cert_pem, cert_path);
    if (!cert.ok()) return cert.status();
    auto key = ParseKey(*key_pem, key_path);
    if (!key.ok()) return key.status();
    if (X509_check_private_key(cert->get(), key->get()) != 1) {
      return absl::FailedPreconditionError(fmt::format(
          "{} is not the key of {}; restore both from a backup, or delete both to make a new "
          "CA (clients must then trust the new ca.pem)",
          key_path, cert_path));
    }
    return std::make_pair(std::move(*cert), std::move(*key));
  }
  for (const Status* s : {&cert_pem.status(), &key_pem.status()}) {
    if (!s->ok() && !absl::IsNotFound(*s)) return *s;  // unreadable: never replaced
  }
  if (cert_pem.ok() != key_pem.ok()) {
    return absl::FailedPreconditionError(fmt::format(
        "{} and {} must both exist or both be missing; restore the missing one from a backup, "
        "or delete both to make a new CA",
        cert_path, key_path));
  }
  auto key = NewKey();
  if (!key.ok()) return key.status();
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  auto cert = MakeCert(key->get(), fmt::format("micro CA ({})", host), nullptr, key->get(), kCaDays,
                       {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                        {NID_key_usage, "critical,keyCertSign,cRLSign"},
                        {NID_subject_key_identifier, "hash"}});
  if (!cert.ok()) return cert.status();
  // The key first: a ca.pem without its key would be refused at the next start.
  if (Status s = auth::WriteSecretFile(key_path, KeyPem(key->get())); !s.ok()) return s;
  if (Status s = auth::WriteSecretFile(cert_path, CertPem(cert->get())); !s.ok()) return s;
  if (::chmod(cert_path.c_str(), 0644) != 0) {
    return absl::InternalError(fmt::format("cannot make {} readable", cert_path));
  }
  return std::make_pair(std::move(*cert), std::move(*key));
}

}  // namespace

Result<TlsIdentity> LoadTlsFiles(const std::string& cert_file, const std::string& key_file) {
  auto cert_pem = auth::ReadSecretFile(cert_file);
  if (!cert_pem.ok()) return absl::InvalidArgumentError(cert_pem.status().message());
  auto key_pem = auth::ReadSecretFile(key_file);
  if (!key_pem.ok()) return absl::InvalidArgumentError(key_pem.status().message());
  auto cert = ParseCert(*cert_pem, cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ParseKey(*key_pem, key_file);
  if (!key.ok()) return key.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        fmt::format("{} is not the private key of the certificate in {}", key_file, cert_file));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert->get())) <= 0) {
    return absl::InvalidArgumentError(fmt::format("the certificate in {} has expired", cert_file));
  }
  return TlsIdentity{*cert_pem, *key_pem, ""};
}

Result<TlsIdentity> AutomaticTls(const std::string& dir, const std::vector<std::string>& hosts) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(fmt::format("cannot create {}", dir));
  }
  auto ca = LoadOrMakeCa(dir);
  if (!ca.ok()) return ca.status();
  auto key = NewKey();
  if (!key.ok()) return key.status();
  std::string names;
  for (const std::string& host : hosts) {
    names += (names.empty() ? "" : ",") + std::string(IsIp(host) ? "IP:" : "DNS:") + host;
  }
  auto cert = MakeCert(key->get(), "micro server", ca->first.get(), ca->second.get(), kServerDays,
                       {{NID_basic_constraints, "critical,CA:FALSE"},
                        {NID_key_usage, "critical,digitalSignature"},
                        {NID_ext_key_usage, "serverAuth"},
                        {NID_subject_key_identifier, "hash"},
                        {NID_authority_key_identifier, "keyid:always"},
                        {NID_subject_alt_name, names}});
  if (!cert.ok()) return cert.status();
  TlsIdentity identity{CertPem(cert->get()), KeyPem(key->get()), dir + "/ca.pem"};
  // For operators and other tools; the daemon serves what it holds in memory.
  if (Status s = auth::WriteSecretFile(dir + "/server.key", identity.private_key_pem); !s.ok()) {
    return s;
  }
  if (Status s = auth::WriteSecretFile(dir + "/server.pem", identity.cert_chain_pem); !s.ok()) {
    return s;
  }
  return identity;
}

std::vector<std::string> CertificateHosts(const std::string& address,
                                          const std::vector<std::string>& extra) {
  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "::1"};
  std::string host = HostOf(address);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  char hostname[256] = "";
  if (::gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0] != '\0') {
    hosts.push_back(hostname);
  }
  if (host == "0.0.0.0" || host == "::" || host.empty()) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = "";
        if (i->ifa_addr->sa_family == AF_INET) {
          inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text,
                    sizeof text);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
          auto* in6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
          if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;  // needs a scope id
          inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        }
        if (text[0] != '\0') hosts.push_back(text);
      }
      ::freeifaddrs(list);
    }
  } else {
    hosts.push_back(host);
  }
  hosts.insert(hosts.end(), extra.begin(), extra.end());
  std::vector<std::string> unique;
  for (const std::string& h : hosts) {
    if (!h.empty() && std::find(unique.begin(), unique.end(), h) == unique.end()) {
      unique.push_back(h);
    }
  }
  return unique;
}

}  // namespace micro::server
