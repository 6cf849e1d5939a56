#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

// The auth service's cryptography, all on libsodium: secrets hashed with Argon2id, access tokens
// signed with Ed25519 (JWT "alg": "EdDSA"), random tokens and secrets.
namespace micro::auth::crypto {

// Argon2id's cost: OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1). Each hash or
// verification holds the memory while it runs; logins run one at a time.
inline constexpr unsigned long long kHashOpsLimit = 2;
inline constexpr size_t kHashMemLimit = size_t{19} << 20;

// A secret as stored: libsodium's self-describing Argon2id string ("$argon2id$v=19$m=...").
// UNAVAILABLE when the memory for it cannot be had.
[[nodiscard]] Result<std::string> HashSecret(std::string_view secret);
// Constant-time; false for a wrong secret or a malformed hash.
[[nodiscard]] bool VerifySecret(const std::string& hash, std::string_view secret);

// `bytes` random bytes as base64url without padding.
std::string RandomToken(size_t bytes);
// `n` random bytes.
std::string RandomBytes(size_t n);
// HMAC-SHA-256 of `data` under `key` (32 bytes), as base64url.
std::string HmacSha256(const std::string& key, std::string_view data);
// A random number from 1 to 2^62.
uint64_t RandomNumber();
// SHA-256 of `data`, hex: how refresh tokens are kept (the token itself never is).
std::string Sha256Hex(std::string_view data);

std::string Base64Url(std::string_view data);
[[nodiscard]] Result<std::string> FromBase64Url(std::string_view text);

// An Ed25519 key pair with its id (the JWT "kid").
struct SigningKey {
  std::string id;
  std::array<uint8_t, 64> secret_key{};  // libsodium's form: seed and public key
  std::array<uint8_t, 32> public_key{};
};
SigningKey NewSigningKey();

// A compact JWT: header {"alg":"EdDSA","typ":"JWT","kid":key.id}, `claims` as the payload.
std::string SignJwt(const SigningKey& key, const nlohmann::json& claims);

// The public key of a kid, or null when unknown.
using PublicKeyOf = std::function<const std::array<uint8_t, 32>*(const std::string& kid)>;

// The claims of `token` if its header says EdDSA with a known kid and the signature verifies;
// UNAUTHENTICATED otherwise (malformed, another alg such as "none", unknown key, tampered).
// Expiry is the caller's to check.
[[nodiscard]] Result<nlohmann::json> VerifyJwt(std::string_view token, const PublicKeyOf& key_of);

}  // namespace micro::auth::crypto
