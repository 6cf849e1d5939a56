#pragma once

namespace micro::server {

// Sends gRPC's own log lines through the daemon's logger, so they follow its level and format
// (one JSON object per line in JSON mode) instead of going raw to stderr.
void RouteGrpcLogsToSpdlog();

}  // namespace micro::server
