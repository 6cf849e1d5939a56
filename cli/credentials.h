#pragma once

#include <map>
#include <string>

#include "cli/client.h"
#include "core/status.h"

namespace micro::cli {

// The tokens `micro login` keeps for one daemon address, in
// $HOME/.micro/tokens/<address>.json (mode 0600, the folder 0700).
struct Credentials {
  std::string account;
  std::string ns;
  std::string access_token;
  std::string refresh_token;
  int64_t expiry_unix_ms = 0;
};

std::string CredentialsPath(const std::map<std::string, std::string>& env,
                            const std::string& address);
[[nodiscard]] Result<Credentials> LoadCredentials(const std::string& path);
[[nodiscard]] Status SaveCredentials(const std::string& path, const Credentials& credentials);

// Where `micro login` keeps the CA it verified `address` with: $HOME/.micro/ca/<address>.pem.
// Logging out keeps it.
std::string CaPath(const std::map<std::string, std::string>& env, const std::string& address);

// TLS of options->address: the CA of --tls-ca or MICRO_TLS_CA (INVALID_ARGUMENT if unreadable),
// else the one kept by `micro login`, else none; TLS is on with a CA or for a non-loopback
// address.
[[nodiscard]] Status ResolveTls(ClientOptions* options, const ParsedArgs& flags,
                                const std::map<std::string, std::string>& env);

// The access token for `options.address` into options->token: MICRO_TOKEN if set, else the
// stored one, refreshed first (and stored again) when it expires within a minute. No stored
// token leaves it empty (the daemon then says how to log in); a stored login the daemon refuses
// to refresh is forgotten, with a warning.
[[nodiscard]] Status AttachToken(ClientOptions* options,
                                 const std::map<std::string, std::string>& env);

}  // namespace micro::cli
