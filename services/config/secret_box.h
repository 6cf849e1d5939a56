#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace micro::config {

// AES-256-GCM (OpenSSL) with a ring of versioned keys. Sealed text is base64 of
//
//   key version (1 byte) | nonce (12 random bytes) | ciphertext | tag (16 bytes)
//
// and the GCM associated data is "micro.config.secret\0" followed by the caller's `context`
// (config: namespace, '\0', dotted path), so a sealed text opens only where it was sealed.
// The highest key version seals; every version in the ring opens what it sealed, so a key is
// rotated by adding a newer version and keeping the old one until its secrets are set again.
//
// Text sealed before key versions existed (base64 of nonce | ciphertext | tag, no associated
// data) still opens with key version 1; it is bound to its place the next time it is set.
// Thread-safe.
class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;

  // One key, version 1, as 32 raw bytes. INVALID_ARGUMENT otherwise.
  [[nodiscard]] static Result<SecretBox> FromKey(const std::string& key);

  // Raw 32-byte keys by version (1..255). INVALID_ARGUMENT if empty or a key is not 32 bytes.
  [[nodiscard]] static Result<SecretBox> FromKeys(std::map<uint8_t, std::string> keys);

  // Key text as kept in the key file, micro.yaml or the environment: keys separated by newlines
  // or commas, each "<base64 of 32 bytes>" (version 1) or "<version>:<base64 of 32 bytes>".
  [[nodiscard]] static Result<SecretBox> FromKeyText(const std::string& text);

  // Reads `path` (key text, see FromKeyText), or creates it with one random key and mode 0600.
  // FAILED_PRECONDITION if it is readable or writable by anyone but its owner (mode wider than
  // 0600) or holds no valid key text.
  [[nodiscard]] static Result<SecretBox> FromKeyFile(const std::string& path);

  // Seals `plaintext` with the newest key, bound to `context`.
  [[nodiscard]] Result<std::string> Seal(const std::string& plaintext,
                                         const std::string& context) const;
  // INVALID_ARGUMENT if the text was not sealed with a key of this ring for this `context`, or
  // was altered.
  [[nodiscard]] Result<std::string> Open(const std::string& sealed,
                                         const std::string& context) const;

  uint8_t newest_version() const { return keys_.rbegin()->first; }

 private:
  explicit SecretBox(std::map<uint8_t, std::string> keys) : keys_(std::move(keys)) {}
  std::map<uint8_t, std::string> keys_;  // never empty
};

std::string Base64Encode(const std::string& bytes);
[[nodiscard]] Result<std::string> Base64Decode(const std::string& text);

}  // namespace micro::config
