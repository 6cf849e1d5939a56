#pragma once

#include <string>

#include "core/status.h"

namespace micro::config {

// AES-256-GCM with a random 96-bit nonce per message (OpenSSL). Sealed text is
// base64(nonce | ciphertext | tag), so it fits in a JSON string. Thread-safe.
class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;

  // `key` is 32 raw bytes. INVALID_ARGUMENT otherwise.
  [[nodiscard]] static Result<SecretBox> FromKey(const std::string& key);

  // Decodes a base64 key (as kept in micro.yaml or the environment).
  [[nodiscard]] static Result<SecretBox> FromBase64Key(const std::string& base64_key);

  // Reads `<path>` (a base64 key), or creates it with 32 random bytes and mode 0600.
  [[nodiscard]] static Result<SecretBox> FromKeyFile(const std::string& path);

  [[nodiscard]] Result<std::string> Seal(const std::string& plaintext) const;
  // INVALID_ARGUMENT if the text was not sealed with this key or was altered.
  [[nodiscard]] Result<std::string> Open(const std::string& sealed) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

std::string Base64Encode(const std::string& bytes);
[[nodiscard]] Result<std::string> Base64Decode(const std::string& text);

}  // namespace micro::config
