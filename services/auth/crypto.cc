#include "services/auth/crypto.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

namespace micro::auth::crypto {
namespace {

// sodium_init is thread-safe and idempotent; every entry point calls this first.
void Init() {
  static const int ready = sodium_init();
  (void)ready;
}

// A string member, or "" when absent or of another type (never throws on hostile input).
std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status Unauthenticated(std::string_view why) {
  return absl::UnauthenticatedError(std::string("the token is not valid: ") + std::string(why));
}

}  // namespace

Result<std::string> HashSecret(std::string_view secret) {
  Init();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, secret.data(), secret.size(), kHashOpsLimit, kHashMemLimit) != 0) {
    return absl::UnavailableError("hashing the secret failed: out of memory");
  }
  return std::string(out);
}

bool VerifySecret(const std::string& hash, std::string_view secret) {
  Init();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), secret.data(), secret.size()) == 0;
}

std::string RandomToken(size_t bytes) {
  Init();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return Base64Url(raw);
}

std::string RandomBytes(size_t n) {
  Init();
  std::string out(n, '\0');
  randombytes_buf(out.data(), out.size());
  return out;
}

std::string HmacSha256(const std::string& key, std::string_view data) {
  Init();
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(data.data()),
                                data.size());
  crypto_auth_hmacsha256_final(&state, mac);
  return Base64Url(std::string_view(reinterpret_cast<const char*>(mac), sizeof(mac)));
}

uint64_t RandomNumber() {
  Init();
  uint64_t n = 0;
  randombytes_buf(&n, sizeof(n));
  return (n >> 2) + 1;
}

std::string Sha256Hex(std::string_view data) {
  Init();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return std::string(hex);
}

std::string Base64Url(std::string_view data) {
  Init();
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data.data()),
                    data.size(), variant);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

Result<std::string> FromBase64Url(std::string_view text) {
  Init();
  std::string out(text.size() * 3 / 4 + 3, '\0');
  size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &length, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != text.data() + text.size()) {
    return absl::InvalidArgumentError("not base64url");
  }
  out.resize(length);
  return out;
}

SigningKey NewSigningKey() {
  Init();
  SigningKey key;
  crypto_sign_keypair(key.public_key.data(), key.secret_key.data());
  key.id = RandomToken(9);
  return key;
}

std::string SignJwt(const SigningKey& key, const nlohmann::json& claims) {
  Init();
  const nlohmann::json header = {{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", key.id}};
  std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size(), key.secret_key.data());
  return signing_input + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(signature), sizeof(signature)));
}

Result<nlohmann::json> VerifyJwt(std::string_view token, const PublicKeyOf& key_of) {
  Init();
  if (token.size() > 8192) return Unauthenticated("it is longer than 8192 bytes");
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return Unauthenticated("a JWT has three parts separated by dots");
  }
  auto header_text = FromBase64Url(token.substr(0, first));
  auto claims_text = FromBase64Url(token.substr(first + 1, second - first - 1));
  auto signature = FromBase64Url(token.substr(second + 1));
  if (!header_text.ok() || !claims_text.ok() || !signature.ok()) {
    return Unauthenticated("a part is not base64url");
  }
  nlohmann::json header = nlohmann::json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  nlohmann::json claims = nlohmann::json::parse(*claims_text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object() || !claims.is_object()) return Unauthenticated("a part is not JSON");
  // Only EdDSA: "none", HS256 with the public key as a secret and the like are refused here.
  if (StringField(header, "alg") != "EdDSA") return Unauthenticated("its algorithm is not EdDSA");
  const std::string kid = StringField(header, "kid");
  const std::array<uint8_t, 32>* public_key = key_of(kid);
  if (public_key == nullptr) return Unauthenticated("it was signed with an unknown key");
  if (signature->size() != crypto_sign_BYTES ||
      crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature->data()),
                                  reinterpret_cast<const unsigned char*>(token.data()), second,
                                  public_key->data()) != 0) {
    return Unauthenticated("its signature does not verify");
  }
  return claims;
}

}  // namespace micro::auth::crypto
