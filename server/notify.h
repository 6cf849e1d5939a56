#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace micro::server {

// The service manager's readiness protocol (systemd's Type=notify, sd_notify(3)), written by
// hand: one datagram holding `state` ("READY=1", "STOPPING=1", ...) sent to the unix datagram
// socket `socket`, the value of NOTIFY_SOCKET. A socket starting with '@' is in the abstract
// namespace. An empty `socket` means no service manager asked: nothing is sent, and the result
// is OK. Errors (INVALID_ARGUMENT for an unusable address, UNAVAILABLE when the send fails)
// name the socket; the caller logs them, a daemon never stops over them. Thread-safe.
[[nodiscard]] Status NotifyServiceManager(std::string_view socket, std::string_view state);

}  // namespace micro::server
