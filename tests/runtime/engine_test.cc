// The supervision engine with real processes: backoff policy, log files, the process driver and
// the supervisor, in this test process with its own io_context thread.
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "core/clock.h"
#include "runtime/asio_timers.h"
#include "runtime/backoff.h"
#include "runtime/log_files.h"
#include "runtime/memory_desired_state.h"
#include "runtime/process_driver.h"
#include "runtime/supervisor.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using namespace std::chrono_literals;
using micro::testing::LivePidsWithEnv;
using micro::testing::TempDir;
using micro::testing::WaitFor;

// An io_context running on its own thread for the length of a test.
class IoThread {
 public:
  IoThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() { Stop(); }
  // Stops running handlers; what is still queued is destroyed with the io_context.
  void Stop() {
    if (!thread_.joinable()) return;
    work_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }
  // Runs `f` on the io thread and waits for it.
  template <typename F>
  auto Call(F f) {
    std::promise<decltype(f())> done;
    boost::asio::post(io_, [&] { done.set_value(f()); });
    return done.get_future().get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

// Stops an IoThread when it goes out of scope: declared after a driver, it keeps handlers from
// running while the driver is destroyed.
struct StopAtEnd {
  explicit StopAtEnd(IoThread& io) : io(io) {}
  ~StopAtEnd() { io.Stop(); }
  IoThread& io;
};

TEST_CASE("backoff delays grow by the multiplier up to the max", "[runtime][backoff]") {
  BackoffPolicy policy;
  policy.initial = 100ms;
  policy.max = 1000ms;
  policy.multiplier = 2;
  policy.reset_after = 10s;
  policy.jitter = 0;
  Backoff backoff(policy, 1);
  std::vector<int64_t> delays;
  for (int i = 0; i < 6; ++i) delays.push_back(backoff.NextDelay(50ms).count());
  CHECK(delays == std::vector<int64_t>{100, 200, 400, 800, 1000, 1000});
  CHECK(backoff.failures() == 6);
}

TEST_CASE("backoff resets after a healthy run and after Reset", "[runtime][backoff]") {
  BackoffPolicy policy;
  policy.initial = 100ms;
  policy.max = 10s;
  policy.reset_after = 5s;
  policy.jitter = 0;
  Backoff backoff(policy, 1);
  backoff.NextDelay(0ms);
  backoff.NextDelay(0ms);
  CHECK(backoff.NextDelay(1s).count() == 400);
  // A run as long as reset_after counts as healthy: back to the initial delay.
  CHECK(backoff.NextDelay(5s).count() == 100);
  CHECK(backoff.NextDelay(0ms).count() == 200);
  backoff.Reset();
  CHECK(backoff.NextDelay(0ms).count() == 100);
}

TEST_CASE("backoff jitter only takes off, at most its share", "[runtime][backoff]") {
  BackoffPolicy policy;
  policy.initial = 1000ms;
  policy.multiplier = 1;
  policy.jitter = 0.2;
  Backoff backoff(policy, 42);
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) {
    const int64_t d = backoff.NextDelay(0ms).count();
    CHECK(d <= 1000);
    CHECK(d >= 800);
    seen.insert(d);
  }
  CHECK(seen.size() > 10);  // it does vary
}

TEST_CASE("backoff of zero restarts at once", "[runtime][backoff]") {
  BackoffPolicy policy;
  policy.initial = 0ms;
  Backoff backoff(policy, 1);
  for (int i = 0; i < 5; ++i) CHECK(backoff.NextDelay(0ms).count() == 0);
}

TEST_CASE("an asio timer fires once, and never after Cancel, a new Start or its end",
          "[runtime][timers]") {
  IoThread io;
  AsioTimers timers(io.io());
  std::mutex mu;
  std::vector<std::string> fired;
  auto note = [&](std::string what) {
    return [&, what] {
      std::lock_guard lock(mu);
      fired.push_back(what);
    };
  };
  auto cancelled = timers.NewTimer(), restarted = timers.NewTimer(), ended = timers.NewTimer(),
       last = timers.NewTimer();
  io.Call([&] {
    cancelled->Start(1ms, note("cancelled"));
    cancelled->Cancel();
    restarted->Start(1ms, note("first start"));
    restarted->Start(2ms, note("second start"));
    ended->Start(1ms, note("ended"));
    ended.reset();
    last->Start(30ms, note("last"));  // after every other deadline
    return 0;
  });
  REQUIRE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return !fired.empty() && fired.back() == "last";
      },
      5s));
  io.Call([&] {  // timers belong to the io thread
    cancelled.reset();
    restarted.reset();
    last.reset();
    return 0;
  });
  std::lock_guard lock(mu);
  CHECK(fired == std::vector<std::string>{"second start", "last"});
}

TEST_CASE("log lines round-trip through the file format", "[runtime][logs]") {
  LogRecord record{1795761000123, "svc-0", "stderr", "hello world  with  spaces", ""};
  const std::string line = FormatLogLine(record);
  CHECK(line == "2026-11-27T06:30:00.123Z stderr hello world  with  spaces\n");
  LogRecord back;
  REQUIRE(ParseLogLine(line.substr(0, line.size() - 1), "svc-0", &back));
  CHECK(back.unix_ms == record.unix_ms);
  CHECK(back.stream == "stderr");
  CHECK(back.message == record.message);
  CHECK_FALSE(ParseLogLine("garbage", "svc-0", &back));
}

TEST_CASE("log files rotate past the size limit and keep N files", "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{4096, 2});
  for (int i = 0; i < 1000; ++i) {
    logs.Append({1000000 + i, "svc-0", "stdout", "line " + std::to_string(i), ""});
  }
  namespace fs = std::filesystem;
  CHECK(fs::exists(dir.path() + "/svc-0.log"));
  CHECK(fs::exists(dir.path() + "/svc-0.log.1"));
  CHECK(fs::exists(dir.path() + "/svc-0.log.2"));
  CHECK_FALSE(fs::exists(dir.path() + "/svc-0.log.3"));
  CHECK(fs::file_size(dir.path() + "/svc-0.log") <= 4096);
  // The newest records survive rotation, oldest first, with their version.
  auto last = logs.Read({"", 0, 3});
  REQUIRE(last.ok());
  REQUIRE(last->size() == 3);
  CHECK((*last)[0].message == "line 997");
  CHECK((*last)[2].message == "line 999");
  CHECK((*last)[2].version == "v1");
  // Older records went with the rotated-out files.
  auto all = logs.Read({"", 0, -1});
  REQUIRE(all.ok());
  CHECK(all->size() < 1000);
  CHECK(all->back().message == "line 999");
}

TEST_CASE("log reads filter by instance and time, and followers get new records",
          "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "latest", LogPolicy{});
  logs.Append({1000, "a-0", "stdout", "a early", ""});
  logs.Append({2000, "a-1", "stdout", "b early", ""});
  logs.Append({3000, "a-0", "stderr", "a late", ""});
  auto only_a0 = logs.Read({"a-0", 0, 100});
  REQUIRE(only_a0.ok());
  CHECK(only_a0->size() == 2);
  auto since = logs.Read({"", 2000, 100});
  REQUIRE(since.ok());
  REQUIRE(since->size() == 2);
  CHECK((*since)[0].message == "b early");

  auto queue = std::make_shared<ServiceLogs::Queue>(100, 1 << 20, "records", [] {});
  auto token = logs.Follow({"a-0", 0, 1}, queue);
  REQUIRE(token.ok());
  logs.Append({4000, "a-1", "stdout", "not mine", ""});
  logs.Append({5000, "a-0", "stdout", "mine", ""});
  CHECK(queue->Next()->message == "a late");  // the backlog first
  CHECK(queue->Next()->message == "mine");
  CHECK_FALSE(queue->Next().has_value());
  logs.Unsubscribe(*token);
  logs.Append({6000, "a-0", "stdout", "after", ""});
  CHECK_FALSE(queue->Next().has_value());
}

TEST_CASE("line splitter joins chunks and splits runaway lines", "[runtime][logs]") {
  LineSplitter splitter;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  splitter.Feed("hel", collect);
  splitter.Feed("lo\nwor", collect);
  splitter.Feed("ld\n\nlast", collect);
  splitter.Flush(collect);
  CHECK(lines == std::vector<std::string>{"hello", "world", "", "last"});
  lines.clear();
  splitter.Feed(std::string(kMaxLogLineBytes * 2 + 5, 'x') + "\n", collect);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].size() == kMaxLogLineBytes);
  CHECK(lines[2].size() == 5);
}

// Starts `request` on `driver` and collects what happens to it.
struct Run {
  std::promise<Result<Launched>> started;
  std::promise<Exit> exited;
  std::mutex mu;
  std::string out, err;
};

std::shared_ptr<Run> StartOn(IoThread& io, Driver& driver, LaunchRequest request) {
  auto run = std::make_shared<Run>();
  LaunchCallbacks callbacks;
  callbacks.on_started = [run](Result<Launched> l) { run->started.set_value(l); };
  callbacks.on_output = [run](OutputStream s, std::string_view chunk) {
    std::lock_guard lock(run->mu);
    (s == OutputStream::kStdout ? run->out : run->err).append(chunk);
  };
  callbacks.on_exit = [run](Exit e) { run->exited.set_value(e); };
  io.Call([&] {
    driver.Start(request, std::move(callbacks));
    return 0;
  });
  return run;
}

TEST_CASE("process driver runs a program with its env, output and exit code",
          "[runtime][process]") {
  IoThread io;
  ProcessDriver driver(io.io(), "test-" + std::to_string(::getpid()));
  StopAtEnd stop_io(io);  // before the driver goes
  TempDir dir;
  LaunchRequest request;
  request.instance_id = "t.run.0";
  request.command = "sh";
  request.args = {"-c", "echo out $GREETING; pwd; echo err >&2; exit 7"};
  request.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "hi"}};
  request.working_dir = dir.path();
  auto run = StartOn(io, driver, request);
  auto started = run->started.get_future().get();
  REQUIRE(started.ok());
  CHECK(started->pid > 0);
  auto exited = run->exited.get_future();
  REQUIRE(exited.wait_for(10s) == std::future_status::ready);
  const Exit exit = exited.get();
  CHECK(exit.code == 7);
  CHECK(exit.signal == 0);
  std::lock_guard lock(run->mu);
  CHECK(run->out == "out hi\n" + dir.path() + "\n");
  CHECK(run->err == "err\n");
}

TEST_CASE("process driver names the OS error of a failed exec", "[runtime][process]") {
  IoThread io;
  ProcessDriver driver(io.io(), "test-" + std::to_string(::getpid()));
  StopAtEnd stop_io(io);  // before the driver goes
  LaunchRequest request;
  request.instance_id = "t.missing.0";
  request.command = "/nonexistent/server";
  auto missing = StartOn(io, driver, request)->started.get_future().get();
  REQUIRE_FALSE(missing.ok());
  CHECK(std::string(missing.status().message()) ==
        "exec /nonexistent/server: No such file or directory");

  request.command = "no-such-program-anywhere";
  auto not_on_path = StartOn(io, driver, request)->started.get_future().get();
  REQUIRE_FALSE(not_on_path.ok());
  CHECK(std::string(not_on_path.status().message()).find("not found on PATH") != std::string::npos);

  TempDir dir;
  const std::string script = dir.path() + "/not-executable";
  std::ofstream(script) << "#!/bin/sh\n";
  request.command = script;
  auto denied = StartOn(io, driver, request)->started.get_future().get();
  REQUIRE_FALSE(denied.ok());
  CHECK(std::string(denied.status().message()).find("Permission denied") != std::string::npos);

  request.command = "/bin/true";
  request.working_dir = "/nonexistent-dir";
  auto bad_dir = StartOn(io, driver, request)->started.get_future().get();
  REQUIRE_FALSE(bad_dir.ok());
  CHECK(std::string(bad_dir.status().message()) ==
        "chdir /nonexistent-dir: No such file or directory");
}

TEST_CASE("SIGKILL takes grandchildren that left the process group", "[runtime][process]") {
  // With cgroups where they can be written, and without: then a scan of /proc (on the driver's
  // scanner thread) finds the grandchild by its MICRO_INSTANCE_ID.
  const bool use_cgroups = GENERATE(true, false);
  IoThread io;
  const std::string supervisor = "test-" + std::to_string(::getpid());
  ProcessDriver driver(io.io(), supervisor, use_cgroups);
  StopAtEnd stop_io(io);  // before the driver goes
  LaunchRequest request;
  request.instance_id = "t.escape.0";
  request.command = "/bin/sh";
  // A grandchild in its own session (and process group), then the parent waits.
  request.args = {"-c", "setsid sleep 300 & sleep 300"};
  request.env = {{"PATH", "/usr/bin:/bin"}};
  auto run = StartOn(io, driver, request);
  REQUIRE(run->started.get_future().get().ok());
  const std::string marker = "MICRO_INSTANCE_ID=t.escape.0";
  REQUIRE(WaitFor([&] { return LivePidsWithEnv(marker).size() == 3; }, 5s));
  io.Call([&] {
    driver.Signal("t.escape.0", SIGKILL);
    return 0;
  });
  auto exited = run->exited.get_future();
  REQUIRE(exited.wait_for(10s) == std::future_status::ready);
  CHECK(exited.get().signal == SIGKILL);
  CHECK(WaitFor([&] { return LivePidsWithEnv(marker).empty(); }, 5s));
}

TEST_CASE("without cgroups, what an instance left behind goes when its main process exits",
          "[runtime][process]") {
  IoThread io;
  const std::string supervisor = "nocg-" + std::to_string(::getpid());
  ProcessDriver driver(io.io(), supervisor, /*use_cgroups=*/false);
  StopAtEnd stop_io(io);  // before the driver goes
  LaunchRequest request;
  request.instance_id = "t.left-behind.0";
  request.command = "/bin/sh";
  request.args = {"-c", "setsid sleep 300 & sleep 0.2; exit 3"};
  request.env = {{"PATH", "/usr/bin:/bin"}};
  auto run = StartOn(io, driver, request);
  REQUIRE(run->started.get_future().get().ok());
  const std::string marker = "MICRO_INSTANCE_ID=t.left-behind.0";
  auto exited = run->exited.get_future();
  REQUIRE(exited.wait_for(10s) == std::future_status::ready);
  CHECK(exited.get().code == 3);
  // The grandchild left the process group: only the /proc scan finds it, and kills it.
  CHECK(WaitFor([&] { return LivePidsWithEnv(marker).empty(); }, 5s));
}

TEST_CASE("process driver removes what an earlier daemon left running", "[runtime][process]") {
  const std::string supervisor = "left-" + std::to_string(::getpid());
  // A process that looks like an instance of a daemon that died.
  micro::testing::ChildProcess leftover({"/bin/sleep", "300"},
                                        {{"MICRO_SUPERVISOR_ID", supervisor}});
  REQUIRE(WaitFor([&] { return LivePidsWithEnv("MICRO_SUPERVISOR_ID=" + supervisor).size() == 1; },
                  5s));
  {
    IoThread io;
    ProcessDriver driver(io.io(), supervisor);
    StopAtEnd stop_io(io);  // before the driver goes
    std::promise<void> done;
    io.Call([&] {
      driver.RemoveLeftovers({}, [&] { done.set_value(); });
      return 0;
    });
    REQUIRE(done.get_future().wait_for(15s) == std::future_status::ready);
  }
  // The driver, as subreaper and SIGCHLD owner, may have reaped it: look in /proc.
  CHECK(LivePidsWithEnv("MICRO_SUPERVISOR_ID=" + supervisor).empty());
}

// A supervisor over real processes, with the desired state in memory.
class LiveEngine {
 public:
  LiveEngine()
      : driver_(io_.io(), "engine-" + std::to_string(::getpid())),
        timers_(io_.io()),
        supervisor_(io_.io(), clock_, timers_, state_, driver_, nullptr,
                    "no container engine in this test", Options()) {}
  ~LiveEngine() {
    std::promise<void> stopped;
    supervisor_.StopAll([&] { stopped.set_value(); });
    stopped.get_future().wait_for(30s);
    // No handler may run while the supervisor and the driver are destroyed below.
    io_.Stop();
  }

  SupervisorOptions Options() {
    SupervisorOptions options;
    options.logs_dir = logs_.path();
    options.daemon_address = "127.0.0.1:1";
    options.base_env = {{"PATH", "/usr/bin:/bin"}};
    options.seed = 7;
    return options;
  }

  Result<ServiceView> Create(ServiceSpec spec) {
    std::promise<Result<ServiceView>> done;
    supervisor_.Create(std::move(spec), [&](Result<ServiceView> v) { done.set_value(v); });
    return done.get_future().get();
  }
  Result<ServiceView> Read(const std::string& name) {
    std::promise<Result<std::vector<ServiceView>>> done;
    supervisor_.Read("micro", name, "", [&](auto v) { done.set_value(v); });
    auto views = done.get_future().get();
    if (!views.ok()) return views.status();
    return views->front();
  }
  Status Delete(const std::string& name) {
    std::promise<Status> done;
    supervisor_.Delete("micro", name, "", [&](Status s) { done.set_value(s); });
    return done.get_future().get();
  }
  Result<ServiceView> Restart(const std::string& name) {
    std::promise<Result<ServiceView>> done;
    supervisor_.Update("micro", name, "latest", std::nullopt,
                       [&](Result<ServiceView> v) { done.set_value(v); });
    return done.get_future().get();
  }
  std::vector<LogRecord> Logs(const std::string& name) {
    auto logs = supervisor_.Logs("micro", name, "");
    if (!logs.ok()) return {};
    return *(*logs)[0]->Read({"", 0, -1});
  }

 private:
  TempDir logs_;
  IoThread io_;
  SystemClock clock_;
  MemoryDesiredState state_;
  ProcessDriver driver_;
  AsioTimers timers_;
  Supervisor supervisor_;
};

ServiceSpec Spec(const std::string& name, const std::string& script) {
  ServiceSpec spec;
  spec.ns = "micro";
  spec.name = name;
  spec.command = "/bin/sh";
  spec.args = {"-c", script};
  spec.grace = 2s;
  return spec;
}

// The exact delays are tested on a fake clock (supervisor_test.cc); this one runs real processes.
TEST_CASE("a crashing process is started again", "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec spec = Spec("crasher", "echo up; exit 3");
  spec.backoff.initial = 10ms;
  REQUIRE(engine.Create(spec).ok());
  REQUIRE(WaitFor([&] { return engine.Read("crasher")->instances[0].restarts >= 2; }, 10s));
  CHECK(engine.Read("crasher")->instances[0].last_exit_code == 3);
  int ups = 0;
  for (const LogRecord& r : engine.Logs("crasher"))
    ups += r.stream == "stdout" && r.message == "up";
  CHECK(ups >= 2);
}

TEST_CASE("restart policies: never and on-failure leave a clean exit stopped",
          "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec once = Spec("once", "exit 0");
  once.restart = RestartPolicy::kOnFailure;
  REQUIRE(engine.Create(once).ok());
  ServiceSpec never = Spec("never", "exit 4");
  never.restart = RestartPolicy::kNever;
  REQUIRE(engine.Create(never).ok());
  REQUIRE(WaitFor([&] { return engine.Read("once")->status == Phase::kStopped; }, 5s));
  REQUIRE(WaitFor([&] { return engine.Read("never")->status == Phase::kStopped; }, 5s));
  std::this_thread::sleep_for(300ms);
  CHECK(engine.Read("once")->instances[0].restarts == 0);
  CHECK(engine.Read("never")->instances[0].restarts == 0);
  CHECK(engine.Read("never")->instances[0].last_exit_code == 4);
}

TEST_CASE("instances get the platform environment and their own address", "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec spec = Spec("envy",
                          "echo $MICRO_SERVER $MICRO_SERVICE_NAME $MICRO_SERVICE_VERSION "
                          "$MICRO_NAMESPACE $MICRO_SERVICE_ADDRESS $OWN; sleep 300");
  spec.env = {{"OWN", "mine"}};
  spec.instances = 2;
  REQUIRE(engine.Create(spec).ok());
  REQUIRE(WaitFor([&] { return engine.Read("envy")->running == 2; }, 5s));
  auto view = engine.Read("envy");
  CHECK(view->instances[0].address != view->instances[1].address);
  REQUIRE(WaitFor(
      [&] {
        int lines = 0;
        for (const auto& r : engine.Logs("envy")) lines += r.stream == "stdout";
        return lines == 2;
      },
      5s));
  for (const auto& r : engine.Logs("envy")) {
    if (r.stream != "stdout") continue;
    const auto& instance = view->instances[r.instance == "envy-0" ? 0 : 1];
    CHECK(r.message == "127.0.0.1:1 envy latest micro " + instance.address + " mine");
  }
}

TEST_CASE("delete stops every process of the service, grandchildren included",
          "[runtime][supervisor]") {
  LiveEngine engine;
  // The shell ignores SIGTERM: the grace period ends in SIGKILL.
  ServiceSpec spec = Spec("stubborn", "trap '' TERM; setsid sleep 300 & sleep 300 & wait");
  spec.grace = 1s;
  spec.instances = 2;
  REQUIRE(engine.Create(spec).ok());
  REQUIRE(WaitFor([&] { return engine.Read("stubborn")->running == 2; }, 5s));
  const std::string marker = "MICRO_INSTANCE_ID=micro.stubborn.latest.";
  REQUIRE(WaitFor([&] { return LivePidsWithEnv(marker).size() == 6; }, 5s));
  const auto before = std::chrono::steady_clock::now();
  REQUIRE(engine.Delete("stubborn").ok());
  CHECK(std::chrono::steady_clock::now() - before >= 900ms);  // it waited the grace period
  CHECK(LivePidsWithEnv(marker).empty());
  CHECK(engine.Read("stubborn").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a failing health check restarts the instance", "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec spec = Spec("sick", "sleep 300");
  spec.health.kind = HealthCheckKind::kTcp;  // nothing listens on its address
  spec.health.interval = 100ms;
  spec.health.timeout = 100ms;
  spec.health.failure_threshold = 2;
  spec.backoff.initial = 50ms;
  REQUIRE(engine.Create(spec).ok());
  CHECK(engine.Read("sick")->status == Phase::kStarting);
  REQUIRE(WaitFor([&] { return engine.Read("sick")->instances[0].restarts >= 1; }, 10s));
  bool noted = false;
  for (const auto& r : engine.Logs("sick")) {
    noted |= r.message == "restarting: the health check failed";
  }
  CHECK(noted);
  CHECK(engine.Read("sick")->instances[0].last_exit_signal == SIGTERM);
}

TEST_CASE("a build runs first, a failed build is an error with the reason",
          "[runtime][supervisor]") {
  LiveEngine engine;
  TempDir dir;
  ServiceSpec good = Spec("built", "cat artifact; sleep 300");
  good.build = "echo compiled > artifact";
  good.working_dir = dir.path();
  REQUIRE(engine.Create(good).ok());
  REQUIRE(WaitFor([&] { return engine.Read("built")->status == Phase::kRunning; }, 5s));
  REQUIRE(WaitFor(
      [&] {
        for (const auto& r : engine.Logs("built")) {
          if (r.instance == "built-0" && r.message == "compiled") return true;
        }
        return false;
      },
      5s));

  ServiceSpec bad = Spec("broken", "sleep 300");
  bad.build = "echo 'syntax error on line 3' >&2; exit 2";
  REQUIRE(engine.Create(bad).ok());
  REQUIRE(WaitFor([&] { return engine.Read("broken")->status == Phase::kError; }, 5s));
  CHECK(engine.Read("broken")->error ==
        "build failed: exit code 2; see 'micro logs broken --instance build'");
  bool logged = false;
  for (const auto& r : engine.Logs("broken")) {
    logged |=
        r.instance == "build" && r.stream == "stderr" && r.message == "syntax error on line 3";
  }
  CHECK(logged);
}

TEST_CASE("a missing binary is an error naming the OS error", "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec spec = Spec("ghost", "");
  spec.command = "/no/such/binary";
  spec.args.clear();
  spec.restart = RestartPolicy::kNever;
  REQUIRE(engine.Create(spec).ok());
  REQUIRE(WaitFor([&] { return engine.Read("ghost")->status == Phase::kError; }, 5s));
  CHECK(engine.Read("ghost")->error == "exec /no/such/binary: No such file or directory");
}

TEST_CASE("creating a deployed service again is ALREADY_EXISTS", "[runtime][supervisor]") {
  LiveEngine engine;
  REQUIRE(engine.Create(Spec("twice", "sleep 300")).ok());
  auto again = engine.Create(Spec("twice", "sleep 300"));
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace micro::runtime

namespace micro::runtime {
namespace {

TEST_CASE("the process limit holds through the instance's cgroup", "[runtime][process]") {
  IoThread io;
  ProcessDriver driver(io.io(), "limits-" + std::to_string(::getpid()));
  StopAtEnd stop_io(io);  // before the driver goes
  if (driver.isolation().find("pids") == std::string::npos &&
      driver.isolation().find("v2") == std::string::npos) {
    WARN("SKIPPED: no writable pids cgroup here (" << driver.isolation() << ")");
    return;
  }
  LaunchRequest request;
  request.instance_id = "t.limits.0";
  request.command = "/bin/sh";
  // With the shell itself, a limit of 2 leaves room for one sleep: the other forks fail.
  request.args = {"-c", "sleep 1 & sleep 1 & sleep 1 & wait"};
  request.env = {{"PATH", "/usr/bin:/bin"}};
  request.max_processes = 2;
  auto run = StartOn(io, driver, request);
  REQUIRE(run->started.get_future().get().ok());
  auto exited = run->exited.get_future();
  REQUIRE(exited.wait_for(20s) == std::future_status::ready);
  std::lock_guard lock(run->mu);
  CHECK(run->err.find("fork") != std::string::npos);
}

TEST_CASE("the memory limit is written to the instance's cgroup", "[runtime][process]") {
  IoThread io;
  const std::string supervisor = "memlimit-" + std::to_string(::getpid());
  ProcessDriver driver(io.io(), supervisor);
  StopAtEnd stop_io(io);  // before the driver goes
  if (driver.isolation().find("memory") == std::string::npos) {
    WARN("SKIPPED: no writable memory cgroup here (" << driver.isolation() << ")");
    return;
  }
  LaunchRequest request;
  request.instance_id = "t.mem.0";
  request.command = "/bin/sh";
  request.args = {"-c",
                  "cat /sys/fs/cgroup/memory$(grep :memory: /proc/self/cgroup | cut -d: -f3)"
                  "/memory.limit_in_bytes"};
  request.env = {{"PATH", "/usr/bin:/bin"}};
  request.memory_bytes = 48 << 20;
  auto run = StartOn(io, driver, request);
  REQUIRE(run->started.get_future().get().ok());
  auto exited = run->exited.get_future();
  REQUIRE(exited.wait_for(20s) == std::future_status::ready);
  CHECK(exited.get().code == 0);
  std::lock_guard lock(run->mu);
  CHECK(run->out == std::to_string(48 << 20) + "\n");
}

}  // namespace
}  // namespace micro::runtime

namespace micro::runtime {
namespace {

TEST_CASE("an http health check passes against the instance's address", "[runtime][supervisor]") {
  LiveEngine engine;
  ServiceSpec spec = Spec("web",
                          "exec /usr/bin/python3 -m http.server ${MICRO_SERVICE_ADDRESS##*:} "
                          "--bind 127.0.0.1");
  spec.health.kind = HealthCheckKind::kHttp;
  spec.health.path = "/";
  spec.health.interval = 200ms;
  spec.health.timeout = 1s;
  spec.health.failure_threshold = 50;
  REQUIRE(engine.Create(spec).ok());
  CHECK(WaitFor([&] { return engine.Read("web")->status == Phase::kRunning; }, 15s));
  CHECK(engine.Read("web")->instances[0].restarts == 0);
}

}  // namespace
}  // namespace micro::runtime

namespace micro::runtime {
namespace {

TEST_CASE("deleting a service while it builds stops the build", "[runtime][supervisor]") {
  LiveEngine engine;
  const std::string marker = "BUILD_MARK=" + std::to_string(::getpid());
  ServiceSpec spec = Spec("slowbuild", "sleep 300");
  spec.build = "sleep 300";
  spec.env = {{"BUILD_MARK", std::to_string(::getpid())}};
  REQUIRE(engine.Create(spec).ok());
  REQUIRE(WaitFor([&] { return !LivePidsWithEnv(marker).empty(); }, 5s));
  CHECK(engine.Read("slowbuild")->status == Phase::kBuilding);
  REQUIRE(engine.Delete("slowbuild").ok());
  CHECK(WaitFor([&] { return LivePidsWithEnv(marker).empty(); }, 5s));
}

}  // namespace
}  // namespace micro::runtime

namespace micro::runtime {
namespace {

TEST_CASE("overlapping restarts leave exactly the desired instances", "[runtime][supervisor]") {
  // All at once (max_parallel 0) and rolling: each later update takes over the earlier one.
  for (const int max_parallel : {0, 1}) {
    INFO("max_parallel " << max_parallel);
    LiveEngine engine;
    const std::string marker =
        "OVERLAP_MARK=" + std::to_string(::getpid()) + "-" + std::to_string(max_parallel);
    ServiceSpec spec = Spec("overlap", "exec sleep 300");
    spec.env = {{"OVERLAP_MARK", marker.substr(marker.find('=') + 1)}};
    spec.instances = 2;
    spec.update.max_parallel = max_parallel;
    spec.update.min_healthy_time = 200ms;
    REQUIRE(engine.Create(spec).ok());
    REQUIRE(WaitFor([&] { return engine.Read("overlap")->running == 2; }, 5s));
    // Three updates in flight at once: each stop waits on the same instances.
    std::vector<std::thread> updates;
    for (int i = 0; i < 3; ++i) updates.emplace_back([&] { (void)engine.Restart("overlap"); });
    for (auto& t : updates) t.join();
    REQUIRE(WaitFor(
        [&] {
          auto view = engine.Read("overlap");
          if (!view.ok() || view->running != 2 || view->rollout.active()) return false;
          for (const InstanceView& i : view->instances) {
            if (i.revision != view->revision) return false;
          }
          return view->instances.size() == 2;
        },
        20s));
    std::this_thread::sleep_for(300ms);
    CHECK(LivePidsWithEnv(marker).size() == 2);
  }
}

}  // namespace
}  // namespace micro::runtime
