// `micro store`: records in the daemon's store (micro.store.v1.Store), and the offline restore of
// a snapshot into a stopped daemon's data dir.

#include <charconv>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "micro/store/v1/store.grpc.pb.h"
#include "server/config.h"
#include "server/data_dir.h"
#include "storage/rocks_db.h"

namespace micro::cli {
namespace {

namespace v1 = micro::store::v1;

// Prints a usage error the way the flag parser does and returns its exit code, 2.
int UsageError(const std::string& subcommand, const std::string& message) {
  std::cerr << "error: " << message << "; see 'micro store " << subcommand << " --help'\n";
  return 2;
}
int UsageError(const std::string& subcommand, const Status& status) {
  return UsageError(subcommand, std::string(status.message()));
}

// Prints `error: <CODE>: <message>` for a failure outside gRPC; returns exit code 1.
int ReportStatus(const Status& status) {
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return ExitCodeOf(status.code());
}

// The numeric flag `name`, or `fallback` when absent. INVALID_ARGUMENT naming the flag unless it
// is a whole number from `min` to `max`.
Result<uint64_t> NumberFlag(const ParsedArgs& args, const std::string& name, uint64_t min,
                            uint64_t max, uint64_t fallback = 0) {
  if (!args.Has(name)) return fallback;
  const std::string text = args.Get(name);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max) {
    return absl::InvalidArgumentError("--" + name + " must be a whole number from " +
                                      std::to_string(min) + " to " + std::to_string(max) +
                                      ", not '" + text + "'");
  }
  return n;
}

// "a=1,b=2" as a map. INVALID_ARGUMENT for an entry without '=' or with an empty key.
Result<std::map<std::string, std::string>> ParseMetadata(const std::string& text) {
  std::map<std::string, std::string> metadata;
  for (size_t start = 0; start <= text.size();) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string entry = text.substr(start, comma - start);
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          "--metadata takes KEY=VALUE pairs separated by commas, not '" + entry + "'");
    }
    metadata[entry.substr(0, eq)] = entry.substr(eq + 1);
    start = comma + 1;
  }
  return metadata;
}

std::vector<FlagSpec> LocationFlags() {
  return {{"database", 'd', "DB", "database (default: the namespace)"},
          {"table", 't', "TABLE", "table (default: default)"}};
}

std::vector<FlagSpec> ScanFlags() {
  return {{"limit", 0, "N", "at most N results (0: no limit; a read returns 1000 at most)"},
          {"offset", 0, "N", "skip the first N results"},
          {"order", 0, "ORDER", "asc or desc, by key (default asc)"}};
}

template <typename... Lists>
std::vector<FlagSpec> Concat(std::vector<FlagSpec> first, const Lists&... rest) {
  (first.insert(first.end(), rest.begin(), rest.end()), ...);
  return first;
}

struct ScanArgs {
  uint32_t limit = 0;
  uint32_t offset = 0;
  v1::Order order = v1::ORDER_UNSPECIFIED;
};

Result<ScanArgs> ParseScan(const ParsedArgs& args) {
  constexpr uint64_t kMax = std::numeric_limits<uint32_t>::max();
  auto limit = NumberFlag(args, "limit", 0, kMax);
  if (!limit.ok()) return limit.status();
  auto offset = NumberFlag(args, "offset", 0, kMax);
  if (!offset.ok()) return offset.status();
  ScanArgs scan{static_cast<uint32_t>(*limit), static_cast<uint32_t>(*offset)};
  const std::string order = args.Get("order", "asc");
  if (order == "desc") {
    scan.order = v1::ORDER_DESC;
  } else if (order == "asc") {
    scan.order = v1::ORDER_ASC;
  } else {
    return absl::InvalidArgumentError("--order must be asc or desc, not '" + order + "'");
  }
  return scan;
}

std::unique_ptr<v1::Store::Stub> Stub(const ClientOptions& options) {
  return v1::Store::NewStub(Connect(options));
}

void PrintRecords(const v1::ReadResponse& response) {
  if (response.records_size() == 0) {
    std::cout << "no records\n";
    return;
  }
  Table table({"KEY", "VALUE", "TTL", "REVISION", "METADATA"});
  for (const v1::Record& r : response.records()) {
    table.Add({Displayable(r.key()), Displayable(r.value()),
               r.ttl_seconds() == 0 ? "-" : std::to_string(r.ttl_seconds()) + "s",
               std::to_string(r.revision()), JoinMetadata(r.metadata())});
  }
  table.Print(std::cout);
}

int Read(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("read", "missing KEY");
  auto scan = ParseScan(args);
  if (!scan.ok()) return UsageError("read", scan.status());
  const bool scanning = args.Has("prefix") || args.Has("suffix");
  if (!scanning && (args.Has("limit") || args.Has("offset") || args.Has("order"))) {
    return UsageError("read",
                      "--limit, --offset and --order apply to a scan; add --prefix or "
                      "--suffix");
  }
  v1::ReadRequest request;
  request.set_database(args.Get("database"));
  request.set_table(args.Get("table"));
  request.set_key(args.positionals[0]);
  request.set_prefix(args.Has("prefix"));
  request.set_suffix(args.Has("suffix"));
  request.set_limit(scan->limit);
  request.set_offset(scan->offset);
  request.set_order(scan->order);
  grpc::ClientContext context;
  Prepare(context, options);
  v1::ReadResponse response;
  grpc::Status status = Stub(options)->Read(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  options.output == Output::kJson ? PrintJson(response) : PrintRecords(response);
  if (response.more() && options.output != Output::kJson) {
    std::cerr << "more records match: add --offset " << response.next_offset()
              << " for the next page\n";
  }
  return 0;
}

int Write(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() < 2) {
    return UsageError("write",
                      args.positionals.empty() ? "missing KEY and VALUE" : "missing VALUE");
  }
  v1::WriteRequest request;
  request.set_database(args.Get("database"));
  request.set_table(args.Get("table"));
  v1::Record& record = *request.mutable_record();
  record.set_key(args.positionals[0]);
  if (args.positionals[1] == "-") {
    record.set_value(std::string(std::istreambuf_iterator<char>(std::cin), {}));
  } else {
    record.set_value(args.positionals[1]);
  }
  auto ttl = NumberFlag(args, "ttl", 0, std::numeric_limits<int64_t>::max());
  if (!ttl.ok()) return UsageError("write", ttl.status());
  record.set_ttl_seconds(static_cast<int64_t>(*ttl));
  if (args.Has("metadata")) {
    auto metadata = ParseMetadata(args.Get("metadata"));
    if (!metadata.ok()) return UsageError("write", metadata.status());
    record.mutable_metadata()->insert(metadata->begin(), metadata->end());
  }
  // 0 would mean "any revision": refuse it rather than drop the condition silently.
  auto if_revision = NumberFlag(args, "if-revision", 1, std::numeric_limits<uint64_t>::max());
  if (!if_revision.ok()) return UsageError("write", if_revision.status());
  request.set_if_revision(*if_revision);
  request.set_if_absent(args.Has("if-absent"));
  grpc::ClientContext context;
  Prepare(context, options);
  v1::WriteResponse response;
  grpc::Status status = Stub(options)->Write(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    std::cout << "revision " << response.revision() << "\n";
  }
  return 0;
}

int Delete(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("delete", "missing KEY");
  v1::DeleteRequest request;
  request.set_database(args.Get("database"));
  request.set_table(args.Get("table"));
  request.set_key(args.positionals[0]);
  grpc::ClientContext context;
  Prepare(context, options);
  v1::DeleteResponse response;
  grpc::Status status = Stub(options)->Delete(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    std::cout << "deleted " << Displayable(request.key()) << "\n";
  }
  return 0;
}

// Prints keys as the chunks arrive, so a large table needs no memory here. JSON is one array,
// left unclosed if the stream fails (the exit code says so too).
int List(const ParsedArgs& args, const ClientOptions& options) {
  auto scan = ParseScan(args);
  if (!scan.ok()) return UsageError("list", scan.status());
  v1::ListRequest request;
  request.set_database(args.Get("database"));
  request.set_table(args.Get("table"));
  request.set_prefix(args.Get("prefix"));
  request.set_suffix(args.Get("suffix"));
  request.set_limit(scan->limit);
  request.set_offset(scan->offset);
  request.set_order(scan->order);
  grpc::ClientContext context;
  Prepare(context, options);
  auto reader = Stub(options)->List(&context, request);
  const bool json = options.output == Output::kJson;
  if (json) std::cout << "[";
  size_t count = 0;
  v1::ListResponse chunk;
  while (reader->Read(&chunk)) {
    for (const std::string& key : chunk.keys()) {
      if (json) {
        std::cout << (count == 0 ? "\n  " : ",\n  ")
                  << nlohmann::json(key).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
      } else {
        std::cout << Displayable(key) << "\n";
      }
      ++count;
    }
    std::cout.flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ReportError(status, options);
  if (json) std::cout << (count == 0 ? "]\n" : "\n]\n");
  return 0;
}

template <typename Names>
void PrintNames(const Names& names) {
  for (const std::string& name : names) std::cout << name << "\n";
}

int Databases(const ParsedArgs&, const ClientOptions& options) {
  grpc::ClientContext context;
  Prepare(context, options);
  v1::DatabasesResponse response;
  grpc::Status status = Stub(options)->Databases(&context, v1::DatabasesRequest(), &response);
  if (!status.ok()) return ReportError(status, options);
  options.output == Output::kJson ? PrintJson(response) : PrintNames(response.databases());
  return 0;
}

int Tables(const ParsedArgs& args, const ClientOptions& options) {
  grpc::ClientContext context;
  Prepare(context, options);
  v1::TablesRequest request;
  request.set_database(args.Get("database"));
  v1::TablesResponse response;
  grpc::Status status = Stub(options)->Tables(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  options.output == Output::kJson ? PrintJson(response) : PrintNames(response.tables());
  return 0;
}

// `path` made absolute against the working directory, without "." / ".." or a trailing slash.
std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec).lexically_normal();
  if (!absolute.has_filename() && absolute.has_parent_path()) absolute = absolute.parent_path();
  return absolute.string();
}

int Snapshot(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty() || args.positionals[0].empty()) {
    return UsageError("snapshot", "missing DIR");
  }
  v1::SnapshotRequest request;
  request.set_dir(args.positionals[0]);  // the daemon resolves it inside its snapshot folder
  grpc::ClientContext context;
  Prepare(context, options);
  v1::SnapshotResponse response;
  grpc::Status status = WithProgress("writing the snapshot", [&] {
    return Stub(options)->Snapshot(&context, request, &response);
  });
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    std::cout << "snapshot written to " << response.dir() << " (revision " << response.revision()
              << ")\n";
  }
  return 0;
}

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    names.insert(entry.path().string());
  }
  return names;
}

// Restores without a daemon. The data dir is found as the daemon finds it (--data-dir,
// MICRO_HOME, the config file, ~/.micro) and locked for the whole restore, so a daemon that
// runs is refused here and one that starts meanwhile is refused there.
int Restore(const ParsedArgs& args, const Env& env) {
  if (args.positionals.empty() || args.positionals[0].empty()) {
    return UsageError("restore", "missing DIR");
  }
  auto config = server::LoadDaemonConfig(args, env);
  if (!config.ok()) return UsageError("restore", config.status());
  // A name is looked up in the snapshot folder, where 'micro store snapshot NAME' wrote it.
  const std::string& given = args.positionals[0];
  const std::string snapshot = std::filesystem::path(given).is_absolute()
                                   ? AbsolutePath(given)
                                   : AbsolutePath(config->store.snapshot_dir + "/" + given);
  auto data_dir = server::DataDir::Open(config->data_dir);
  if (!data_dir.ok()) return ReportStatus(data_dir.status());
  const std::string db = (*data_dir)->path() + "/db";
  const std::set<std::string> before = Entries((*data_dir)->path());
  // A large snapshot takes a while to copy and sync: on a terminal, the seconds are shown.
  Status restored;
  (void)WithProgress("restoring " + snapshot, [&] {
    restored = storage::RocksDb::Restore(snapshot, db);
    return grpc::Status::OK;
  });
  if (!restored.ok()) return ReportStatus(restored);
  std::cout << "restored " << db << " from " << snapshot;
  bool kept = false;
  for (const std::string& entry : Entries((*data_dir)->path())) {
    if (before.count(entry) == 0 && entry.rfind(db + ".before-restore-", 0) == 0) {
      std::cout << "; the previous database was kept at " << entry;
      kept = true;
    }
  }
  std::cout << (kept ? "\n" : "; there was no database before\n");
  return 0;
}

// ---- Subcommands ----

int ReadCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store read KEY [flags]",
      "Shows the record KEY, or with --prefix / --suffix every record whose key starts / ends\n"
      "with KEY, one page: at most 1000 records and 3 MiB. When more match, stderr says which\n"
      "--offset gives the next page. Table columns: KEY VALUE TTL (seconds left, - for none)\n"
      "REVISION METADATA. A key or value that is not printable UTF-8 is shown as base64:...;\n"
      "--output json has the exact bytes (base64, as proto JSON writes bytes).\n"
      "A missing or expired KEY is NOT_FOUND (exit 3).",
      Concat(LocationFlags(),
             std::vector<FlagSpec>{{"prefix", 0, "", "every record whose key starts with KEY"},
                                   {"suffix", 0, "", "every record whose key ends with KEY"}},
             ScanFlags()),
      1};
  return RunClientCommand(spec, args, env, &Read);
}

int WriteCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store write KEY VALUE [flags]",
      "Writes the record KEY and prints its new revision. VALUE '-' reads the value from stdin.\n"
      "With --if-absent or --if-revision the write happens only if the condition holds, else\n"
      "FAILED_PRECONDITION (exit 4).",
      Concat(LocationFlags(),
             std::vector<FlagSpec>{
                 {"ttl", 0, "SECONDS", "expire after this long (default 0: never)"},
                 {"metadata", 0, "K=V,...", "metadata, comma-separated (give the flag once)"},
                 {"if-absent", 0, "", "only if there is no live record with this key"},
                 {"if-revision", 0, "N", "only if the record's revision is N"}}),
      2};
  return RunClientCommand(spec, args, env, &Write);
}

int DeleteCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{"micro store delete KEY [flags]",
                         "Deletes the record KEY. Deleting a missing key is not an error.",
                         LocationFlags(), 1};
  return RunClientCommand(spec, args, env, &Delete);
}

int ListCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store list [flags]",
      "Prints the keys of a table, one per line as they arrive (JSON: one array of keys).\n"
      "Unlike a read scan it has no maximum: --limit 0 lists every key.",
      Concat(LocationFlags(),
             std::vector<FlagSpec>{{"prefix", 0, "PREFIX", "only keys starting with PREFIX"},
                                   {"suffix", 0, "SUFFIX", "only keys ending with SUFFIX"}},
             ScanFlags()),
      0};
  return RunClientCommand(spec, args, env, &List);
}

int DatabasesCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{"micro store databases [flags]",
                         "Prints the databases that hold at least one record, one per line.",
                         {},
                         0};
  return RunClientCommand(spec, args, env, &Databases);
}

int TablesCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store tables [flags]",
      "Prints the tables of a database that hold at least one record, one per line.",
      {{"database", 'd', "DB", "database (default: the namespace)"}},
      0};
  return RunClientCommand(spec, args, env, &Tables);
}

int SnapshotCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store snapshot DIR [flags]",
      "Has the daemon write a consistent copy of the whole store (every database) into DIR,\n"
      "while it keeps serving. DIR is a new directory inside the daemon's snapshot folder\n"
      "(store.snapshot_dir, default <data dir>/snapshots): a name relative to it, or an\n"
      "absolute path inside it; anything outside is PERMISSION_DENIED. 'micro store restore\n"
      "DIR' puts a snapshot back.",
      {},
      1};
  return RunClientCommand(spec, args, env, &Snapshot);
}

int RestoreCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro store restore DIR [flags]",
      "Replaces the store in a data dir with the snapshot in DIR: a name is looked up in the\n"
      "snapshot folder (store.snapshot_dir, default <data dir>/snapshots), an absolute path\n"
      "is used as it is. Offline: run it on the daemon's machine with the daemon stopped (it\n"
      "is refused while a daemon holds the data dir). The data dir is found as 'micro server'\n"
      "finds it: --data-dir, else MICRO_HOME, else data_dir in the config file (--config,\n"
      "MICRO_CONFIG), else ~/.micro. The previous database is kept beside the new one, at\n"
      "<data dir>/db.before-restore-<unix ns>. Safe to interrupt: the next restore or daemon\n"
      "start completes the swap or leaves the previous database in place.",
      {{"data-dir", 0, "DIR", "the daemon's data dir (env MICRO_HOME; default ~/.micro)"},
       {"config", 0, "FILE", "the daemon's configuration file (env MICRO_CONFIG)"}},
      1};
  auto parsed = ParseCommandLine(spec, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  return Restore(std::get<ParsedArgs>(parsed), env);
}

const std::vector<Subcommand> kSubcommands = {
    {"read", "show a record, or the records of a prefix or suffix scan", &ReadCommand},
    {"write", "write a record", &WriteCommand},
    {"delete", "delete a record", &DeleteCommand},
    {"list", "list the keys of a table", &ListCommand},
    {"databases", "list the databases holding records", &DatabasesCommand},
    {"tables", "list the tables of a database", &TablesCommand},
    {"snapshot", "have the daemon write a snapshot of the store", &SnapshotCommand},
    {"restore", "put a snapshot back, with the daemon stopped", &RestoreCommand},
};

}  // namespace

int StoreCommand(const std::vector<std::string>& args, const Env& env) {
  return RunSubcommand("store",
                       "Reads and writes records in the daemon's store: databases (default: the "
                       "namespace)\nof tables (default: default) of records.",
                       kSubcommands, args, env);
}

}  // namespace micro::cli
