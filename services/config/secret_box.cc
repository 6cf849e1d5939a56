#include "services/config/secret_box.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace micro::config {
namespace {

constexpr int kNonceBytes = 12;
constexpr int kTagBytes = 16;

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

const unsigned char* Bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

}  // namespace

std::string Base64Encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(Bytes(out), Bytes(bytes), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(const std::string& text) {
  if (text.size() % 4 != 0) return absl::InvalidArgumentError("not base64 (length)");
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(Bytes(out), Bytes(text), static_cast<int>(text.size()));
  if (n < 0) return absl::InvalidArgumentError("not base64");
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

Result<SecretBox> SecretBox::FromKey(const std::string& key) {
  if (key.size() != kKeyBytes) {
    return absl::InvalidArgumentError(
        fmt::format("the secret key must be {} bytes, not {}", kKeyBytes, key.size()));
  }
  return SecretBox(key);
}

Result<SecretBox> SecretBox::FromBase64Key(const std::string& base64_key) {
  auto key = Base64Decode(base64_key);
  if (!key.ok()) {
    return absl::InvalidArgumentError("the secret key must be 32 bytes in base64: " +
                                      std::string(key.status().message()));
  }
  return FromKey(*key);
}

Result<SecretBox> SecretBox::FromKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string key = text.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    auto box = FromBase64Key(key);
    if (!box.ok()) {
      return absl::FailedPreconditionError(
          fmt::format("{}: {}", path, std::string(box.status().message())));
    }
    return box;
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(Bytes(key), static_cast<int>(key.size())) != 1) {
    return absl::InternalError("no random bytes for a new secret key");
  }
  const std::string text = Base64Encode(key) + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::PermissionDeniedError(fmt::format("cannot create {}", path));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return absl::InternalError(fmt::format("cannot write {}", path));
  return FromKey(key);
}

Result<std::string> SecretBox::Seal(const std::string& plaintext) const {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = Bytes(out);
  if (RAND_bytes(nonce, kNonceBytes) != 1) return absl::InternalError("no random nonce");
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nonce + kNonceBytes, &n, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), nonce + kNonceBytes + n, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          nonce + kNonceBytes + plaintext.size()) != 1) {
    return absl::InternalError("encryption failed");
  }
  return Base64Encode(out);
}

Result<std::string> SecretBox::Open(const std::string& sealed) const {
  auto raw = Base64Decode(sealed);
  if (!raw.ok() || raw->size() < static_cast<size_t>(kNonceBytes + kTagBytes)) {
    return absl::InvalidArgumentError("not a sealed secret");
  }
  const size_t length = raw->size() - kNonceBytes - kTagBytes;
  std::string plain(length, '\0');
  unsigned char* in = Bytes(*raw);
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), in) != 1 ||
      EVP_DecryptUpdate(ctx.get(), Bytes(plain), &n, in + kNonceBytes, static_cast<int>(length)) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, in + kNonceBytes + length) !=
          1 ||
      EVP_DecryptFinal_ex(ctx.get(), Bytes(plain) + n, &n) != 1) {
    return absl::InvalidArgumentError(
        "a secret could not be decrypted: wrong key, or the stored text was altered");
  }
  return plain;
}

}  // namespace micro::config
