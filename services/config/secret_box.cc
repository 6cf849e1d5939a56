#include "services/config/secret_box.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <memory>
#include <optional>
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

Result<SecretBox> SecretBox::FromKey(const std::string& key) { return FromKeys({{1, key}}); }

Result<SecretBox> SecretBox::FromKeys(std::map<uint8_t, std::string> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no secret key given");
  for (const auto& [version, key] : keys) {
    if (version == 0) return absl::InvalidArgumentError("secret key versions start at 1");
    if (key.size() != kKeyBytes) {
      return absl::InvalidArgumentError(fmt::format(
          "the secret key (version {}) must be {} bytes, not {}", version, kKeyBytes, key.size()));
    }
  }
  return SecretBox(std::move(keys));
}

Result<SecretBox> SecretBox::FromKeyText(const std::string& text) {
  std::map<uint8_t, std::string> keys;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",\n", start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    start = end + 1;
    while (!item.empty() && (item.back() == '\r' || item.back() == ' ')) item.pop_back();
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    if (item.empty()) continue;
    int version = 1;
    if (const size_t colon = item.find(':'); colon != std::string::npos) {
      const std::string number = item.substr(0, colon);
      auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), version);
      if (ec != std::errc() || ptr != number.data() + number.size() || version < 1 ||
          version > 255) {
        return absl::InvalidArgumentError(
            fmt::format("the secret key version '{}' is not a whole number from 1 to 255", number));
      }
      item.erase(0, colon + 1);
    }
    auto key = Base64Decode(item);
    if (!key.ok()) {
      return absl::InvalidArgumentError("the secret key must be 32 bytes in base64: " +
                                        std::string(key.status().message()));
    }
    if (!keys.emplace(static_cast<uint8_t>(version), std::move(*key)).second) {
      return absl::InvalidArgumentError(
          fmt::format("secret key version {} is given twice", version));
    }
  }
  return FromKeys(std::move(keys));
}

Result<SecretBox> SecretBox::FromKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(fmt::format("cannot stat {}", path));
    }
    // The key decrypts every secret: a copy readable by others would make encryption moot.
    if ((st.st_mode & 0777 & ~0600) != 0) {
      return absl::FailedPreconditionError(
          fmt::format("{} has mode {:04o}; a secret key file must be readable by its owner only "
                      "(mode 0600 or narrower): run 'chmod 600 {}'",
                      path, st.st_mode & 0777, path));
    }
    std::stringstream text;
    text << in.rdbuf();
    auto box = FromKeyText(text.str());
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

namespace {

std::string AssociatedData(const std::string& context) {
  return std::string("micro.config.secret", sizeof("micro.config.secret")) + context;
}

// AES-256-GCM of `length` bytes at `in` into `out`, tag after; false on any failure.
bool Encrypt(const std::string& key, const unsigned char* nonce, const std::string& aad,
             const std::string& plaintext, unsigned char* out) {
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  return ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), nonce) == 1 &&
         (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &n, Bytes(aad),
                                           static_cast<int>(aad.size())) == 1) &&
         EVP_EncryptUpdate(ctx.get(), out, &n, Bytes(plaintext),
                           static_cast<int>(plaintext.size())) == 1 &&
         EVP_EncryptFinal_ex(ctx.get(), out + n, &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, out + plaintext.size()) ==
             1;
}

// Opens nonce | ciphertext | tag at `in` (`size` bytes in all); nullopt if it does not open.
std::optional<std::string> Decrypt(const std::string& key, const unsigned char* in, size_t size,
                                   const std::string& aad) {
  if (size < static_cast<size_t>(kNonceBytes + kTagBytes)) return std::nullopt;
  const size_t length = size - kNonceBytes - kTagBytes;
  std::string plain(length, '\0');
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  // The tag is read through a const_cast: OpenSSL's ctrl takes void* but only reads it here.
  unsigned char* tag = const_cast<unsigned char*>(in) + kNonceBytes + length;
  const bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), in) == 1 &&
      (aad.empty() ||
       EVP_DecryptUpdate(ctx.get(), nullptr, &n, Bytes(aad), static_cast<int>(aad.size())) == 1) &&
      EVP_DecryptUpdate(ctx.get(), Bytes(plain), &n, in + kNonceBytes, static_cast<int>(length)) ==
          1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), Bytes(plain) + n, &n) == 1;
  if (!ok) return std::nullopt;
  return plain;
}

}  // namespace

Result<std::string> SecretBox::Seal(const std::string& plaintext,
                                    const std::string& context) const {
  const auto& [version, key] = *keys_.rbegin();
  std::string out(1 + kNonceBytes + plaintext.size() + kTagBytes, '\0');
  out[0] = static_cast<char>(version);
  unsigned char* nonce = Bytes(out) + 1;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return absl::InternalError("no random nonce");
  if (!Encrypt(key, nonce, AssociatedData(context), plaintext, nonce + kNonceBytes)) {
    return absl::InternalError("encryption failed");
  }
  return Base64Encode(out);
}

Result<std::string> SecretBox::Open(const std::string& sealed, const std::string& context) const {
  auto raw = Base64Decode(sealed);
  if (!raw.ok() || raw->empty()) return absl::InvalidArgumentError("not a sealed secret");
  const unsigned char* in = Bytes(*raw);
  if (auto key = keys_.find(in[0]); key != keys_.end()) {
    if (auto plain = Decrypt(key->second, in + 1, raw->size() - 1, AssociatedData(context))) {
      return *plain;
    }
  }
  // Sealed before key versions and associated data: key version 1, nothing bound.
  if (auto key = keys_.find(1); key != keys_.end()) {
    if (auto plain = Decrypt(key->second, in, raw->size(), "")) return *plain;
  }
  return absl::InvalidArgumentError(
      "a secret could not be decrypted: wrong key, the stored text was altered, or it was "
      "sealed for another namespace or path");
}

}  // namespace micro::config
