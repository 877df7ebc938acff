// /health, /metrics and /openapi.yaml.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/embedded_files.h"
#include "server/openapi.h"

namespace segd::server::detail {
namespace {

void Gauge(std::string* out, absl::string_view name, absl::string_view help, absl::string_view type,
           double value) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                  absl::StrFormat("%.17g", value), "\n");
}

}  // namespace

absl::Status Health(const HandlerContext& ctx, Call& call) {
  engine::EngineStats stats = ctx.engine.Stats();
  bool down = ctx.figures.shutting_down.load(std::memory_order_relaxed);
  call.response.status = down ? 503 : 200;
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("status").String(down ? "shutting_down" : "ok");
  json.Key("segments").Uint(stats.active_segments);
  json.Key("users").Uint(stats.registered_users);
  json.Key("memberships").Uint(stats.memberships);
  // Reads are served whatever this says; writes only when it is "ok".
  const absl::Status writes = ctx.log.WriteState();
  json.Key("writes").String(writes.ok() ? "ok" : "refused");
  if (!writes.ok()) json.Key("writes_refused_because").String(writes.message());
  json.Key("disk_free_bytes").Uint(ctx.log.disk().free_bytes());
  json.Key("disk_reserve_bytes").Uint(ctx.log.disk().min_free_bytes());
  json.Key("log_bytes").Uint(ctx.log.ApproximateBytes());
  json.EndObject();
  return absl::OkStatus();
}

absl::Status MetricsText(const HandlerContext& ctx, Call& call) {
  call.response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  std::string* out = &call.response.body;
  ctx.metrics.AppendPrometheus(out);
  engine::EngineStats stats = ctx.engine.Stats();
  const ServiceFigures& f = ctx.figures;
  Gauge(out, "segd_segments", "Active segments.", "gauge", stats.active_segments);
  Gauge(out, "segd_users_registered", "Registered users.", "gauge", stats.registered_users);
  Gauge(out, "segd_users_known", "Users ever seen (dictionary size).", "gauge", stats.known_users);
  Gauge(out, "segd_memberships", "Memberships in all segments.", "gauge", stats.memberships);
  Gauge(out, "segd_expiries_pending", "Memberships with an expiry still to come.", "gauge",
        stats.pending_expiries);
  Gauge(out, "segd_expired_total", "Memberships ended by their TTL.", "counter",
        stats.expired_total);
  Gauge(out, "segd_expiry_failures_total", "Expiry passes that the log refused.", "counter",
        f.expiry_failures.load());
  if (ctx.auth != nullptr) ctx.auth->AppendMetrics(out);
  Gauge(out, "segd_changes_waiting",
        "Long polls and event streams waiting for a change (GET /v1/changes, /v1/changes/stream).",
        "gauge", ctx.log.changes().waiting());
  if (ctx.webhooks != nullptr) {
    const std::vector<WebhookStatus> hooks = ctx.webhooks->List();
    struct Family {
      const char* name;
      const char* help;
      const char* type;
      uint64_t WebhookStatus::*field;
    };
    static constexpr Family kFamilies[] = {
        {"segd_webhook_lag", "Log records after a webhook's acknowledged cursor.", "gauge",
         &WebhookStatus::lag},
        {"segd_webhook_delivered_total", "Changes a webhook's receiver acknowledged since start.",
         "counter", &WebhookStatus::delivered},
    };
    for (const Family& f : kFamilies) {
      absl::StrAppend(out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ", f.type, "\n");
      for (const WebhookStatus& h : hooks) {
        absl::StrAppend(out, f.name, "{id=\"", h.id, "\"} ", h.*(f.field), "\n");
      }
    }
    absl::StrAppend(out,
                    "# HELP segd_webhook_failures Consecutive failed deliveries of a "
                    "webhook.\n# TYPE segd_webhook_failures gauge\n");
    for (const WebhookStatus& h : hooks) {
      absl::StrAppend(out, "segd_webhook_failures{id=\"", h.id, "\"} ", h.failures, "\n");
    }
  }
  const engine::RuleStats rules = ctx.engine.GetRuleStats();
  Gauge(out, "segd_rule_segments", "Rule segments (answering or being backfilled).", "gauge",
        rules.rules.rules);
  Gauge(out, "segd_rule_aggregates", "Counts and sums the rules read, shared between rules.",
        "gauge", rules.rules.aggregates);
  Gauge(out, "segd_rule_states", "(user, aggregate) pairs holding state.", "gauge",
        rules.rules.states);
  Gauge(out, "segd_rule_deadlines", "Moments at which an aggregate changes with no new event.",
        "gauge", rules.rules.deadlines);
  Gauge(out, "segd_users_with_traits", "Users with traits.", "gauge",
        rules.rules.users_with_traits);
  Gauge(out, "segd_events_accepted_total", "Events accepted since start.", "counter",
        rules.events_accepted);
  Gauge(out, "segd_rule_changes_total",
        "Membership changes made by rules since start (events, traits and time).", "counter",
        rules.rule_changes);
  Gauge(out, "segd_backfills_running", "Backfills reading the log now.", "gauge",
        rules.backfills_running);
  Gauge(out, "segd_log_records", "Membership records in the operation log.", "gauge",
        ctx.log.next_seq() - 1);
  Gauge(out, "segd_log_bytes", "Bytes of the operation log on disk and in memtables.", "gauge",
        ctx.log.ApproximateBytes());
  const storage::OpLog::MemoryUsage rocks = ctx.log.memory_usage();
  Gauge(out, "segd_rocksdb_memory_budget_bytes", "RocksDB's memory budget (--rocksdb-memory).",
        "gauge", rocks.budget);
  Gauge(out, "segd_rocksdb_memtable_bytes", "Bytes in RocksDB's memtables.", "gauge",
        rocks.memtables);
  Gauge(out, "segd_rocksdb_cache_bytes",
        "Bytes charged to RocksDB's block cache: cached blocks plus the memtables.", "gauge",
        rocks.cache);
  Gauge(out, "segd_disk_free_bytes",
        "Free bytes on the data directory's filesystem (as of the last check, at most 200 ms "
        "old).",
        "gauge", ctx.log.disk().free_bytes());
  Gauge(out, "segd_disk_total_bytes", "Size of the data directory's filesystem.", "gauge",
        ctx.log.disk().total_bytes());
  Gauge(out, "segd_disk_reserve_bytes",
        "Free space segd keeps (--min-free-disk): writes are refused below it.", "gauge",
        ctx.log.disk().min_free_bytes());
  Gauge(out, "segd_writes_refused",
        "1 while writes are refused (disk almost full, a failed log, a read-only start).", "gauge",
        ctx.log.WriteState().ok() ? 0 : 1);
  const storage::DurabilityCounters durability = ctx.log.durability_counters();
  Gauge(out, "segd_log_write_batches_total",
        "Write batches handed to the operation log (one per mutation that changed something).",
        "counter", durability.written_batches);
  Gauge(out, "segd_log_durable_batches_total",
        "Of those, how many are as durable as --durability promises.", "counter",
        durability.durable_batches);
  Gauge(out, "segd_log_wal_syncs_total",
        "Write-ahead log syncs (fsync mode); batches per sync is the group commit's size.",
        "counter", durability.wal_syncs);
  Gauge(out, "segd_snapshots_total", "Snapshots written since start.", "counter",
        f.snapshots.load());
  Gauge(out, "segd_snapshot_failures_total", "Snapshots that failed.", "counter",
        f.snapshot_failures.load());
  Gauge(out, "segd_snapshot_last_seq", "Log position of the newest snapshot written.", "gauge",
        f.last_snapshot_seq.load());
  Gauge(out, "segd_snapshot_last_bytes", "Encoded size of the newest snapshot written.", "gauge",
        f.last_snapshot_bytes.load());
  Gauge(out, "segd_snapshot_last_seconds", "Time the newest snapshot took.", "gauge",
        f.last_snapshot_seconds.load());
  Gauge(out, "segd_recovery_seconds", "Time the last start-up recovery took.", "gauge",
        f.recovery_seconds.load());
  return absl::OkStatus();
}

absl::Status OpenApi(const HandlerContext&, Call& call) {
  call.response.content_type = "application/yaml";
  call.response.body.assign(kOpenApiYaml);
  return absl::OkStatus();
}

absl::Status ApiDocs(const HandlerContext&, Call& call) {
  std::optional<EmbeddedFile> page = FindDocsFile("index.html");
  if (!page) return HttpError("not_found", "this segd was built without its API documentation");
  call.response.content_type = DocsContentType(page->name);
  call.response.body.assign(page->data.data(), page->data.size());
  return absl::OkStatus();
}

absl::Status ApiDocsAsset(const HandlerContext&, Call& call) {
  std::optional<EmbeddedFile> file = FindDocsFile(call.params[0]);
  if (!file) {
    return HttpError("not_found",
                     absl::StrCat("no such documentation file: ", engine::Quote(call.params[0])));
  }
  call.response.content_type = DocsContentType(file->name);
  call.response.body.assign(file->data.data(), file->data.size());
  // The files change only with segd itself.
  call.response.headers.emplace_back("Cache-Control", "public, max-age=3600");
  return absl::OkStatus();
}

}  // namespace segd::server::detail
