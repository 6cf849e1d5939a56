// Auth against the real daemon through the CLI: accounts, their namespace, what the default
// policy keeps to admins, and secrets kept out of logs, argv and the disk.
#include <dirent.h>

#include <algorithm>
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

// Every file under `dir` whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& dir, const std::string& needle) {
  std::vector<std::string> found;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return found;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    if (e->d_type == DT_DIR) {
      auto sub = FilesContaining(path, needle);
      found.insert(found.end(), sub.begin(), sub.end());
    } else if (ReadAll(path).find(needle) != std::string::npos) {
      found.push_back(path);
    }
  }
  ::closedir(d);
  return found;
}

// `ps`-visible command lines of every process.
std::string AllCommandLines() {
  std::string out;
  DIR* d = ::opendir("/proc");
  while (dirent* e = ::readdir(d)) {
    std::string cmdline = ReadAll(std::string("/proc/") + e->d_name + "/cmdline");
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    out += cmdline + "\n";
  }
  ::closedir(d);
  return out;
}

TEST_CASE("accounts through the CLI: own namespace, default policy, and no secret in sight",
          "[e2e][auth]") {
  MicroDaemon daemon({"--log-level", "debug"});
  REQUIRE(daemon.WaitUntilServing());
  const std::string admin_secret = ReadAll(daemon.data_dir() + "/admin.secret");
  REQUIRE(admin_secret.size() > 20);

  const std::string secret = "alice-s3cret-value";
  ProgramResult made = RunProgram(
      {"/bin/sh", "-c",
       "echo '" + secret + "' | '" + MicroBinary() + "' auth create account alice -n team-a " +
           "--scope reader --secret-stdin --address " + daemon.address()},
      daemon.CliEnv());
  REQUIRE(made.exit_code == 0);
  CHECK(made.out == "created account alice in namespace team-a\n");
  ProgramResult listed = daemon.Cli({"auth", "list", "accounts", "-n", "team-a", "-o", "json"});
  REQUIRE(listed.exit_code == 0);
  CHECK(nlohmann::json::parse(listed.out)["accounts"][0]["id"] == "alice");
  CHECK(listed.out.find(secret) == std::string::npos);
  CHECK(daemon.Cli({"auth", "create", "account", "bob", "-n", "team-a"}).exit_code == 2);

  // alice logs in with her own HOME, and works in her namespace by default.
  TempDir home;
  const std::map<std::string, std::string> as_alice = {{"HOME", home.path()}};
  auto alice = [&](std::vector<std::string> args) {
    args.insert(args.begin(), MicroBinary());
    args.insert(std::find(args.begin(), args.end(), "--"), {"--address", daemon.address()});
    return RunProgram(args, as_alice);
  };
  ProgramResult login =
      RunProgram({"/bin/sh", "-c",
                  "echo '" + secret + "' | '" + MicroBinary() +
                      "' login alice -n team-a --password-stdin --address " + daemon.address()},
                 as_alice);
  REQUIRE(login.exit_code == 0);
  CHECK(alice({"store", "write", "k", "v"}).exit_code == 0);
  CHECK(alice({"store", "read", "k"}).out.find("v") != std::string::npos);
  CHECK(daemon.Cli({"store", "read", "k", "-n", "team-a"}).exit_code == 0);  // admin: any ns

  ProgramResult other_ns = alice({"store", "read", "k", "-n", "team-b"});
  CHECK(other_ns.exit_code == 5);  // denied
  CHECK(other_ns.err.find("PERMISSION_DENIED") != std::string::npos);
  ProgramResult other_db = alice({"store", "read", "k", "--database", "team-b"});
  CHECK(other_db.err.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(alice({"store", "write", "k", "v", "--database", "team-a.cache"}).exit_code == 0);
  REQUIRE(daemon.Cli({"config", "set", "db.password", "\"hunter22\"", "--secret", "-n", "team-a"})
              .exit_code == 0);
  ProgramResult masked = alice({"config", "get", "db.password"});
  CHECK(masked.exit_code == 0);
  CHECK(masked.out.find("hunter22") == std::string::npos);
  ProgramResult reveal = alice({"config", "get", "db.password", "--secret"});
  CHECK(reveal.err.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(reveal.out.find("hunter22") == std::string::npos);
  ProgramResult deploy = alice({"run", "--name", "x", "--", "/bin/true"});
  CHECK(deploy.err.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(alice({"auth", "list", "accounts"}).err.find("PERMISSION_DENIED") != std::string::npos);
  // Allowed to deploy by a rule, she still may not hand a secret to a service (it could print
  // it).
  REQUIRE(daemon
              .Cli({"auth", "create", "rule", "deployers", "-n", "team-a", "--resource",
                    "service:runtime:*", "--access", "grant"})
              .exit_code == 0);
  ProgramResult leak =
      alice({"run", "--name", "x", "--env-secret", "P=db.password", "--", "/bin/true"});
  CHECK(leak.err.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(leak.err.find("env secrets") != std::string::npos);
  CHECK(daemon.Cli({"status", "-n", "team-a", "-o", "json"}).out.find("\"x\"") ==
        std::string::npos);

  // A rule of her namespace denies her writes; deleting her account logs her out.
  REQUIRE(daemon
              .Cli({"auth", "create", "rule", "no-writes", "-n", "team-a", "--resource",
                    "service:store:Store.Write", "--access", "deny"})
              .exit_code == 0);
  CHECK(alice({"store", "write", "k", "w"}).err.find("PERMISSION_DENIED") != std::string::npos);
  REQUIRE(daemon.Cli({"auth", "delete", "account", "alice", "-n", "team-a"}).exit_code == 0);
  CHECK(alice({"store", "read", "k"}).err.find("UNAUTHENTICATED") != std::string::npos);

  // The secrets appear in no log line (debug level logs every RPC), in no command line, and
  // nowhere in the data dir but admin.secret.
  REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  const std::string log = daemon.process().Stdout() + daemon.process().Stderr();
  CHECK(log.find("rpc /micro.auth.v1.Auth/Token") != std::string::npos);  // calls are logged
  CHECK(log.find(secret) == std::string::npos);
  CHECK(log.find(admin_secret.substr(0, 20)) == std::string::npos);
  CHECK(AllCommandLines().find(secret) == std::string::npos);
  CHECK(FilesContaining(daemon.data_dir(), secret).empty());
  CHECK(FilesContaining(daemon.data_dir(), admin_secret.substr(0, 20)) ==
        std::vector<std::string>{daemon.data_dir() + "/admin.secret"});
}

TEST_CASE(
    "a deployed service logs in as its own account, reaches only its own database, "
    "and its account goes with it",
    "[e2e][auth]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir home;
  // The service logs in with the credentials the runtime gave it, writes a record to its
  // default database, then tries another database.
  const std::string script =
      "export HOME='" + home.path() + "'; M='" + MicroBinary() +
      "'; A=\"$MICRO_SERVER\"; "
      "echo \"id=$MICRO_AUTH_ID\"; "
      "printf '%s' \"$MICRO_AUTH_SECRET\" | $M login \"$MICRO_AUTH_ID\" -n \"$MICRO_NAMESPACE\" "
      "--password-stdin --address $A && $M store write k from-service --address $A && "
      "echo wrote; $M store read k --database micro --address $A 2>&1 | head -n 1; "
      "$M config get -n team-b --address $A 2>&1 | sed 's/^/other-ns: /' | head -n 1; sleep 300";
  REQUIRE(daemon.Cli({"run", "--name", "writer", "--", "/bin/sh", "-c", script}).exit_code == 0);
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "writer"}).out.find("other-ns:") != std::string::npos;
      },
      std::chrono::seconds(30)));
  const std::string logs = daemon.Cli({"logs", "writer"}).out;
  CHECK(logs.find("id=svc.writer") != std::string::npos);
  CHECK(logs.find("wrote") != std::string::npos);
  CHECK(logs.find("other-ns: error: PERMISSION_DENIED") != std::string::npos);  // another namespace
  ProgramResult record = daemon.Cli({"store", "read", "k", "--database", "micro.writer"});
  CHECK(record.out.find("from-service") != std::string::npos);
  ProgramResult accounts = daemon.Cli({"auth", "list", "accounts", "-o", "json"});
  CHECK(accounts.out.find("svc.writer") != std::string::npos);
  // Its secret (read from the instance's environment) is in no status output and nowhere in
  // the data dir: it is derived at each start, not stored.
  const std::string status = daemon.Cli({"status", "writer", "-o", "json"}).out;
  const int pid = nlohmann::json::parse(status)["services"][0]["instances"][0]["pid"];
  std::string environ = ReadAll("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string("MICRO_AUTH_SECRET=");
  const size_t at = environ.find(key);
  REQUIRE(at != std::string::npos);
  const std::string service_secret = environ.substr(at + key.size()).c_str();
  REQUIRE(service_secret.size() > 20);
  CHECK(status.find(service_secret) == std::string::npos);
  CHECK(FilesContaining(daemon.data_dir(), service_secret).empty());
  REQUIRE(daemon.Cli({"kill", "writer"}).exit_code == 0);
  CHECK(daemon.Cli({"auth", "list", "accounts", "-o", "json"}).out.find("svc.writer") ==
        std::string::npos);
}

TEST_CASE(
    "a manifest's env names a config secret: the instance gets it, nothing stores or shows it",
    "[e2e][auth]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const std::string value = "pg-pass-7f3a9c1e";
  REQUIRE(daemon.Cli({"config", "set", "db.password", "\"" + value + "\"", "--secret"}).exit_code ==
          0);
  // The service prints a digest of what it got, so that its log does not hold the value.
  TempDir dir;
  std::ofstream(dir.path() + "/micro.yaml")
      << "name: reader\ncommand: /bin/sh\nargs: [-c, 'printf %s \"$DB_PASSWORD\" | sha256sum; "
         "sleep 300']\nenv:\n  DB_PASSWORD: {secret: db.password}\n  PLAIN: shown\n";
  ProgramResult missing = daemon.Cli(
      {"run", "--name", "other", "--env-secret", "T=api.token", "--", "/bin/sleep", "300"});
  CHECK(missing.exit_code != 0);
  CHECK(missing.err.find("api.token") != std::string::npos);
  REQUIRE(daemon.Cli({"run", dir.path()}).exit_code == 0);
  ProgramResult digest = RunProgram({"/bin/sh", "-c", "printf %s '" + value + "' | sha256sum"}, {});
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "reader"}).out.find(digest.out.substr(0, 64)) !=
               std::string::npos;
      },
      std::chrono::seconds(30)));
  const std::string status = daemon.Cli({"status", "reader", "-o", "json"}).out;
  CHECK(status.find("db.password") != std::string::npos);  // the reference is shown
  CHECK(status.find(value) == std::string::npos);
  CHECK(AllCommandLines().find(value) == std::string::npos);
  CHECK(FilesContaining(daemon.data_dir(), value).empty());
  REQUIRE(daemon.Cli({"kill", "reader"}).exit_code == 0);
}

TEST_CASE(
    "micro auth rotate-keys on a running daemon: new logins get the new key, nobody is "
    "logged out",
    "[e2e][auth]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  auto kid_of = [](const std::string& token) {
    std::string part = token.substr(0, token.find('.'));
    for (char& c : part) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (part.size() % 4 != 0) part += '=';
    ProgramResult decoded = RunProgram({"/bin/sh", "-c", "echo '" + part + "' | base64 -d"}, {});
    return nlohmann::json::parse(decoded.out)["kid"].get<std::string>();
  };
  const std::string old_token = daemon.token();
  const std::string old_kid = kid_of(old_token);
  ProgramResult rotated =
      RunProgram({MicroBinary(), "auth", "rotate-keys", "--data-dir", daemon.data_dir()}, {});
  REQUIRE(rotated.exit_code == 0);
  CHECK(rotated.out.find("running daemon (pid") != std::string::npos);
  // The daemon reloads on the signal: a new login is soon signed with another key.
  TempDir home;
  std::string new_kid;
  REQUIRE(WaitFor(
      [&] {
        ProgramResult login = RunProgram({MicroBinary(), "login", "--admin", "--data-dir",
                                          daemon.data_dir(), "--address", daemon.address()},
                                         {{"HOME", home.path()}});
        if (login.exit_code != 0) return false;
        std::string name = daemon.address();
        std::replace(name.begin(), name.end(), ':', '_');
        const auto stored =
            nlohmann::json::parse(ReadAll(home.path() + "/.micro/tokens/" + name + ".json"));
        new_kid = kid_of(stored["access_token"].get<std::string>());
        return new_kid != old_kid;
      },
      std::chrono::seconds(20)));
  CHECK(new_kid != old_kid);
  ProgramResult with_old =
      RunProgram({MicroBinary(), "store", "write", "k", "v", "--address", daemon.address()},
                 {{"HOME", home.path()}, {"MICRO_TOKEN", old_token}});
  CHECK(with_old.exit_code == 0);
  CHECK(daemon.process().running());
}

TEST_CASE("the CLI refreshes a login that is about to expire, by itself", "[e2e][auth]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir home;
  const std::map<std::string, std::string> env = {{"HOME", home.path()}};
  REQUIRE(RunProgram({MicroBinary(), "login", "--admin", "--ttl", "30", "--data-dir",
                      daemon.data_dir(), "--address", daemon.address()},
                     env)
              .exit_code == 0);
  std::string name = daemon.address();
  std::replace(name.begin(), name.end(), ':', '_');
  const std::string path = home.path() + "/.micro/tokens/" + name + ".json";
  const auto before = nlohmann::json::parse(ReadAll(path));
  // 30 s is within the minute before expiry: the next command refreshes first.
  ProgramResult call =
      RunProgram({MicroBinary(), "store", "write", "k", "v", "--address", daemon.address()}, env);
  CHECK(call.exit_code == 0);
  const auto after = nlohmann::json::parse(ReadAll(path));
  CHECK(after["refresh_token"] != before["refresh_token"]);
  CHECK(after["access_token"] != before["access_token"]);
  CHECK(after["expiry_unix_ms"].get<int64_t>() > before["expiry_unix_ms"].get<int64_t>());
}

TEST_CASE("a daemon with auth.enabled false answers without a token", "[e2e][auth]") {
  MicroDaemon daemon({"--auth-enabled", "false"});
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult anonymous =
      RunProgram({MicroBinary(), "store", "write", "k", "v", "--address", daemon.address()},
                 {{"HOME", daemon.data_dir()}});
  CHECK(anonymous.exit_code == 0);
}

TEST_CASE("a service deployed while auth was off gets its account when the daemon restarts with it",
          "[e2e][auth]") {
  TempDir data;
  TempDir home;
  const std::string script =
      "export HOME='" + home.path() + "'; M='" + MicroBinary() +
      "'; if [ -n \"$MICRO_AUTH_ID\" ]; then printf '%s' \"$MICRO_AUTH_SECRET\" | $M login "
      "\"$MICRO_AUTH_ID\" -n \"$MICRO_NAMESPACE\" --password-stdin --address \"$MICRO_SERVER\" "
      "&& echo logged-in; fi; sleep 300";
  {
    MicroDaemon open({"--data-dir", data.path(), "--auth-enabled", "false"});
    REQUIRE(open.WaitUntilServing());
    REQUIRE(open.Cli({"run", "--name", "early", "--", "/bin/sh", "-c", script}).exit_code == 0);
  }
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "early"}).out.find("logged-in") != std::string::npos;
      },
      std::chrono::seconds(30)));
  CHECK(daemon.Cli({"auth", "list", "accounts", "-o", "json"}).out.find("svc.early") !=
        std::string::npos);
}

}  // namespace
}  // namespace micro::testing
