// TLS against the real daemon: the automatic CA, an operator's certificate, the CLI verifying
// either, and the clients that must fail (plaintext, a foreign CA).
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CA and a certificate it signed for 127.0.0.1, made with the openssl tool in `dir`:
// ca.pem, server.pem, server.key; and another CA, other.pem, that signed nothing here.
void MakeCertificates(const std::string& dir) {
  const std::string script =
      "set -e; cd '" + dir +
      "'; "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
      "-out ca.pem -subj /CN=test-ca -days 2 2>/dev/null; "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
      "-out other.pem -subj /CN=other-ca -days 2 2>/dev/null; "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
      "-out server.csr -subj /CN=server 2>/dev/null; "
      "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
      "server.pem -days 2 -extfile ext.cnf 2>/dev/null";
  ProgramResult made = RunProgram({"/bin/sh", "-c", script}, {});
  REQUIRE(made.exit_code == 0);
}

// A health check over TLS by Python's grpcio (an independent client), with `ca` or without
// TLS when `ca` is empty. Prints "SERVING" or the error code.
std::string PythonHealth(const std::string& address, const std::string& ca) {
  const std::string script =
      "import grpc, sys\n"
      "ca = sys.argv[2]\n"
      "ch = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials(open(ca, 'rb').read()))"
      " if ca else grpc.insecure_channel(sys.argv[1])\n"
      "f = ch.unary_unary('/grpc.health.v1.Health/Check', request_serializer=lambda x: x,"
      " response_deserializer=lambda x: x)\n"
      "try:\n"
      "    print('SERVING' if f(b'', timeout=30) == b'\\x08\\x01' else 'OTHER')\n"
      "except grpc.RpcError as e:\n"
      "    print(e.code().name)\n";
  return RunProgram({"/usr/bin/python3", "-c", script, address, ca}, {}).out;
}

TEST_CASE(
    "automatic TLS: the CLI trusts the daemon's CA after micro login --admin, plaintext "
    "and foreign CAs fail",
    "[e2e][tls]") {
  TempDir certs;
  MakeCertificates(certs.path());
  MicroDaemon daemon({"--tls-auto", "true"});
  REQUIRE(daemon.WaitUntilServing());  // logs in with --admin: the CA is taken from the data dir
  const auto info = nlohmann::json::parse(ReadAll(daemon.data_dir() + "/server.json"));
  CHECK(info["tls"] == true);
  const std::string ca = daemon.data_dir() + "/tls/ca.pem";
  CHECK(info["tls_ca_file"] == ca);

  ProgramResult wrote = daemon.Cli({"store", "write", "k", "v"});
  INFO(wrote.err);
  CHECK(wrote.exit_code == 0);
  ProgramResult read = daemon.Cli({"store", "read", "k"});
  INFO(read.err);
  CHECK(read.out.find("v") != std::string::npos);
  CHECK(PythonHealth(daemon.address(), ca) == "SERVING\n");
  CHECK(PythonHealth(daemon.address(), "") == "UNAVAILABLE\n");
  CHECK(PythonHealth(daemon.address(), certs.path() + "/other.pem") == "UNAVAILABLE\n");

  // Another user without the CA: plaintext fails with a hint; a foreign CA fails the handshake.
  TempDir home;
  const std::map<std::string, std::string> stranger = {{"HOME", home.path()}};
  ProgramResult plain =
      RunProgram({MicroBinary(), "services", "--address", daemon.address()}, stranger);
  CHECK(plain.exit_code == 6);  // unreachable
  CHECK(plain.err.find("--tls-ca") != std::string::npos);
  ProgramResult foreign = RunProgram({MicroBinary(), "services", "--address", daemon.address(),
                                      "--tls-ca", certs.path() + "/other.pem"},
                                     stranger);
  CHECK(foreign.exit_code == 6);  // unreachable
  CHECK(foreign.err.find("TLS handshake") != std::string::npos);
  // With the CA (as MICRO_TLS_CA) the call goes through and is refused for want of a token.
  ProgramResult anonymous = RunProgram({MicroBinary(), "services", "--address", daemon.address()},
                                       {{"HOME", home.path()}, {"MICRO_TLS_CA", ca}});
  CHECK(anonymous.err.find("UNAUTHENTICATED") != std::string::npos);

  // A deployed service gets the CA's path and logs in over TLS with its own account.
  TempDir service_home;
  const std::string script =
      "export HOME='" + service_home.path() +
      "'; echo \"ca=$MICRO_TLS_CA\"; printf '%s' "
      "\"$MICRO_AUTH_SECRET\" | '" +
      MicroBinary() +
      "' login \"$MICRO_AUTH_ID\" --password-stdin --address \"$MICRO_SERVER\" && echo "
      "logged-in; sleep 300";
  REQUIRE(daemon.Cli({"run", "--name", "tls-client", "--", "/bin/sh", "-c", script}).exit_code ==
          0);
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "tls-client"}).out.find("logged-in") != std::string::npos;
      },
      std::chrono::seconds(30)));
  CHECK(daemon.Cli({"logs", "tls-client"}).out.find("ca=" + ca) != std::string::npos);
  REQUIRE(daemon.Cli({"kill", "tls-client"}).exit_code == 0);

  // The CA's key stays private; a restart keeps the CA, so clients keep trusting it.
  CHECK(ReadAll(daemon.data_dir() + "/tls/ca.key").find("PRIVATE KEY") != std::string::npos);
  const std::string ca_before = ReadAll(ca);
  REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  MicroDaemon again({"--tls-auto", "true", "--data-dir", daemon.data_dir()});
  REQUIRE(again.WaitUntilServing());
  CHECK(ReadAll(ca) == ca_before);
  CHECK(PythonHealth(again.address(), ca) == "SERVING\n");
}

TEST_CASE("an operator's certificate: served, verified by the CLI, and a wrong key is refused",
          "[e2e][tls]") {
  TempDir certs;
  MakeCertificates(certs.path());
  const std::string dir = certs.path();
  MicroDaemon daemon({"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key",
                      "--auth-enabled", "false"});
  REQUIRE(daemon.WaitUntilServing());
  CHECK(PythonHealth(daemon.address(), dir + "/ca.pem") == "SERVING\n");
  TempDir home;
  ProgramResult listed = RunProgram({MicroBinary(), "store", "write", "k", "v", "--address",
                                     daemon.address(), "--tls-ca", dir + "/ca.pem"},
                                    {{"HOME", home.path()}});
  CHECK(listed.exit_code == 0);

  MicroDaemon wrong({"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/other.key"});
  CHECK_FALSE(wrong.WaitUntilServing(std::chrono::seconds(10)));
  CHECK(wrong.process().Wait(std::chrono::seconds(10)) != 0);
  CHECK(wrong.process().Stderr().find("is not the private key") != std::string::npos);
  MicroDaemon half({"--tls-cert", dir + "/server.pem"});
  CHECK_FALSE(half.WaitUntilServing(std::chrono::seconds(10)));
  CHECK(half.process().Stderr().find("give both --tls-cert and --tls-key") != std::string::npos);
}

}  // namespace
}  // namespace micro::testing
