// segd-load: an HTTP load generator for segd.
//
// Closed loop (default): each connection keeps --pipeline requests in flight and sends the next
// as soon as an answer arrives; latency is from send to answer.
// Open loop (--rate R): requests are due at a fixed total rate R, spread over the connections;
// latency is measured from the time a request was due, not from when it could be sent, so a
// stalled server shows as latency instead of as fewer requests (coordinated omission).
//
// --load first creates the dataset's segments and imports their members through the API.

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/load/dataset_dump.h"
#include "bench/load/latency_histogram.h"
#include "bench/load/workload.h"

namespace segd::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] = R"(segd-load: HTTP load generator for segd

Usage: segd-load [flags]

  --host ADDR           server address (default 127.0.0.1)
  --port N              server port (default 8080)
  --workload NAME       check | user-segments | count | batch-check | query | mixed | add |
                        import | events (default check)
  --connections N       keep-alive connections (default 50)
  --pipeline N          closed loop: requests in flight per connection (default 1)
  --rate R              open loop at R requests/s in all, latency from the due time
                        (default 0: closed loop)
  --duration SECONDS    how long to send (default 10)
  --threads N           client threads (default 1)
  --segment K           check, count, batch-check, mixed, add, import: always segment seg-K
                        (default: a Zipf-weighted random segment per request)
  --expr EXPR           query: always this expression (default: two random segments ANDed)
  --batch N             checks per batch-check request, lines per import request, events per
                        events request (1: one JSON event a request; more: NDJSON) (default 1000)
  --write-fraction F    mixed: share of writes, 0-1 (default 0.05)
  --event-types N       events: types ev-0 ... ev-(N-1), Zipf-weighted (default 20)
  --trait-fraction F    events: share of events that carry traits plan and country (default 0.01)

  Events go to Zipf-distributed users (a few very active, most seldom seen), with properties
  amount (0-199) and device (mobile, desktop, tablet), at the time segd receives them.

Rules:
  --rules N             before the run, create rule segments rule-1 ... rule-N over the event
                        types (five shapes in turn: a windowed count, a recent event without a
                        later one, a sum, a trait with a filtered count, an absence with a
                        presence) and wait until every one is backfilled (existing ones are kept)

Dataset (the same flags must be given to every run against one loaded server):
  --users N             users (default 1000000)
  --segments N          segments, Zipf sizes: segment k holds users/k (default 100)
  --seed N              dataset and request seed (default 1)
  --ids hashed|decimal  user ids: u- and 12 hex digits of a hash (default), or the user's index
                        as 12 decimal digits, the spelling of redis-benchmark's __rand_int__
  --ttl SECONDS         give every loaded membership this TTL (default: none)
  --load                create the segments and import their members before the run
  --load-only           --load, then exit without a run (with --json: the load's figures)
  --dump FORMAT         write the dataset to stdout and exit, for other systems' bulk loaders:
                        redis-sets | redis-zsets | pg-users | pg-memberships (bench/compare)

Output:
  --json                print the result as one JSON object instead of a table
  --help                this text

Prints a progress line a second on stderr, then a table (or --json) of answers per second,
latency percentiles and answers by status. Exit status: 2 for bad flags; 1 when segd cannot be
reached, --load or --dump failed, nothing was answered, or more than half of the requests
failed (an error status or a broken connection), each with a message on stderr; else 0.
)";

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  WorkloadSpec workload;
  uint32_t connections = 50;
  uint32_t pipeline = 1;
  double rate = 0;
  double duration = 10;
  uint32_t threads = 1;
  DatasetSpec dataset;
  bool load = false;
  bool load_only = false;
  std::optional<DumpFormat> dump;
  bool json = false;
  uint32_t rules = 0;
};

// Totals of a run, merged from every connection.
struct Results {
  std::mutex mu;
  LatencyHistogram latency;
  std::map<unsigned, uint64_t> statuses;
  uint64_t io_errors = 0;
  std::atomic<uint64_t> answered{0};  // for the progress line
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& ioc, const Options& options, const Dataset& dataset, uint64_t seed,
             Results& results, Clock::time_point end)
      : options_(options),
        socket_(asio::make_strand(ioc)),
        timer_(socket_.get_executor()),
        generator_(dataset, options.workload, seed),
        results_(results),
        end_(end) {}

  ~Connection() {
    std::lock_guard lock(results_.mu);
    results_.latency.Merge(latency_);
    for (const auto& [status, n] : statuses_) results_.statuses[status] += n;
    results_.io_errors += io_errors_;
  }

  void Start(const tcp::endpoint& endpoint) {
    socket_.async_connect(endpoint, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        ++self->io_errors_;
        return;
      }
      self->socket_.set_option(tcp::no_delay(true));
      if (self->options_.rate > 0) {
        self->interval_ = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(self->options_.connections / self->options_.rate));
        self->next_due_ = Clock::now();
        self->SendWhenDue();
      } else {
        self->Fill();
      }
      self->Read();
    });
  }

 private:
  bool Sending() const { return Clock::now() < end_; }

  // Requests are generated once into a pool that the connection cycles through, so that the
  // generator's own cost stays out of the measurement (up to 1,024 requests or 4 MiB).
  void AppendRequest() {
    if (pool_.empty()) {
      std::string first;
      generator_.Append(&first);
      size_t count = std::clamp<size_t>((4u << 20) / first.size(), 16, 1024);
      pool_.push_back(std::move(first));
      while (pool_.size() < count) {
        pool_.emplace_back();
        generator_.Append(&pool_.back());
      }
    }
    pending_ += pool_[next_ % pool_.size()];
    ++next_;
  }

  // Closed loop: tops the connection up to --pipeline requests in flight.
  void Fill() {
    Clock::time_point now = Clock::now();
    while (Sending() && due_.size() < options_.pipeline) {
      AppendRequest();
      due_.push_back(now);
    }
    Flush();
  }

  // Open loop: one request at each due time, whatever is still in flight.
  void SendWhenDue() {
    if (!Sending()) return;
    timer_.expires_at(next_due_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      Clock::time_point now = Clock::now();
      while (self->next_due_ <= now && self->Sending()) {
        self->AppendRequest();
        self->due_.push_back(self->next_due_);
        self->next_due_ += self->interval_;
      }
      self->Flush();
      self->SendWhenDue();
    });
  }

  void Flush() {
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    in_flight_.swap(pending_);
    asio::async_write(socket_, asio::buffer(in_flight_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->in_flight_.clear();
                        if (ec) {
                          ++self->io_errors_;
                          self->Stop();
                          return;
                        }
                        self->Flush();
                      });
  }

  void Read() {
    if (due_.empty() && !Sending()) {
      Stop();
      return;
    }
    parser_.emplace();
    parser_->body_limit(1ull << 30);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnAnswer(ec); });
  }

  void OnAnswer(beast::error_code ec) {
    if (ec) {
      if (!stopped_) ++io_errors_;
      Stop();
      return;
    }
    Clock::time_point now = Clock::now();
    if (!due_.empty()) {
      latency_.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - due_.front()).count()));
      due_.pop_front();
    }
    ++statuses_[parser_->get().result_int()];
    results_.answered.fetch_add(1, std::memory_order_relaxed);
    // Refill once the answers already received are all handled: one write per read rather
    // than one per answer.
    if (options_.rate <= 0 && buffer_.size() == 0) Fill();
    Read();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    beast::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  const Options& options_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  RequestGenerator generator_;
  Results& results_;
  const Clock::time_point end_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::deque<Clock::time_point> due_;  // when each request in flight was due
  std::string pending_, in_flight_;
  std::vector<std::string> pool_;
  size_t next_ = 0;
  bool writing_ = false;
  bool stopped_ = false;
  Clock::duration interval_{};
  Clock::time_point next_due_;
  LatencyHistogram latency_;
  std::map<unsigned, uint64_t> statuses_;
  uint64_t io_errors_ = 0;
};

bool Connect(beast::tcp_stream& stream, const tcp::endpoint& endpoint) {
  beast::error_code ec;
  stream.connect(endpoint, ec);
  if (ec) std::fprintf(stderr, "segd-load: cannot connect: %s\n", ec.message().c_str());
  return !ec;
}

// A blocking request for --load and --rules. Returns the status, 0 on a connection error; the
// answer's body goes to *answer if given.
unsigned Send(beast::tcp_stream& stream, http::verb method, const std::string& target,
              const std::string& content_type, std::string body, std::string* answer = nullptr) {
  http::request<http::string_body> req(method, target, 11);
  req.set(http::field::host, "segd");
  req.set(http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  beast::error_code ec;
  http::write(stream, req, ec);
  if (ec) return 0;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  if (ec) return 0;
  if (res.result_int() >= 400 && res.result_int() != 409) {
    std::fprintf(stderr, "segd-load: %s %s: %u %s\n", std::string(http::to_string(method)).c_str(),
                 target.c_str(), res.result_int(), res.body().c_str());
  }
  if (answer) *answer = std::move(res.body());
  return res.result_int();
}

struct LoadFigures {
  uint64_t memberships = 0;
  double seconds = 0;
};

// Creates the dataset's segments and imports their members, 100,000 lines a request. A second
// thread writes the next request's lines while the server applies the current one, so the
// load measures the server, not this client's formatting (redis-cli --pipe, its peer in
// bench/compare, reads a file written beforehand).
std::optional<LoadFigures> LoadDataset(const Options& options, const Dataset& dataset,
                                       const tcp::endpoint& endpoint) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  if (!Connect(stream, endpoint)) return std::nullopt;
  const std::string ttl_parameter =
      options.dataset.ttl_seconds ? absl::StrCat("?ttl_seconds=", options.dataset.ttl_seconds) : "";
  constexpr uint64_t kLinesPerImport = 100000;
  constexpr size_t kReadyBatches = 2;
  struct Batch {
    uint32_t segment = 0;
    std::string lines;
    uint64_t count = 0;
  };
  std::mutex mu;
  std::condition_variable changed;
  std::deque<Batch> ready;                  // guarded by mu
  bool produced_all = false, stop = false;  // guarded by mu
  auto start = Clock::now();
  std::thread producer([&] {
    auto push = [&](Batch batch) {
      std::unique_lock lock(mu);
      changed.wait(lock, [&] { return ready.size() < kReadyBatches || stop; });
      if (stop) return false;
      ready.push_back(std::move(batch));
      changed.notify_all();
      return true;
    };
    bool running = true;
    for (uint32_t k = 1; k <= options.dataset.segments && running; ++k) {
      Batch batch{k, {}, 0};
      dataset.ForEachMember(k, [&](uint64_t index) {
        if (!running) return;
        absl::StrAppend(&batch.lines, dataset.UserId(index), "\n");
        if (++batch.count == kLinesPerImport) {
          running = push(std::move(batch));
          batch = Batch{k, {}, 0};
        }
      });
      // An empty batch still announces the segment, so that it is created.
      if (running) running = push(std::move(batch));
    }
    std::lock_guard lock(mu);
    produced_all = true;
    changed.notify_all();
  });
  uint64_t memberships = 0;
  uint32_t created = 0;
  bool ok = true;
  while (ok) {
    Batch batch;
    {
      std::unique_lock lock(mu);
      changed.wait(lock, [&] { return !ready.empty() || produced_all; });
      if (ready.empty()) break;
      batch = std::move(ready.front());
      ready.pop_front();
      changed.notify_all();
    }
    const std::string name = Dataset::SegmentName(batch.segment);
    if (batch.segment != created) {
      unsigned status = Send(stream, http::verb::post, "/v1/segments", "application/json",
                             absl::StrCat("{\"name\":\"", name, "\"}"));
      ok = status == 201 || status == 409;
      created = batch.segment;
    }
    if (ok && batch.count > 0) {
      ok = Send(stream, http::verb::post, "/v1/segments/" + name + "/users:import" + ttl_parameter,
                "text/plain", std::move(batch.lines)) == 200;
      memberships += batch.count;
    }
  }
  {
    std::lock_guard lock(mu);
    stop = true;
    changed.notify_all();
  }
  producer.join();
  if (!ok) return std::nullopt;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::fprintf(stderr, "segd-load: loaded %u segments, %llu memberships in %.2f s (%.0f/s)\n",
               options.dataset.segments, static_cast<unsigned long long>(memberships), seconds,
               memberships / seconds);
  return LoadFigures{memberships, seconds};
}

// Creates rule-1 ... rule-N (an existing one is kept) and waits until each is backfilled.
bool CreateRules(const Options& options, const tcp::endpoint& endpoint) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  if (!Connect(stream, endpoint)) return false;
  auto start = Clock::now();
  for (uint32_t k = 1; k <= options.rules; ++k) {
    std::string rule = Dataset::Rule(k, options.workload.event_types);
    std::string escaped;
    for (char c : rule) {
      if (c == '"') escaped += '\\';
      escaped += c;
    }
    unsigned status =
        Send(stream, http::verb::post, "/v1/segments", "application/json",
             absl::StrCat("{\"name\":\"", Dataset::RuleName(k), "\",\"rule\":\"", escaped, "\"}"));
    if (status != 201 && status != 409) return false;
  }
  for (uint32_t k = 1; k <= options.rules; ++k) {
    for (;;) {
      std::string answer;
      if (Send(stream, http::verb::get, "/v1/segments/" + Dataset::RuleName(k), "", "", &answer) !=
          200) {
        return false;
      }
      if (answer.find("\"state\":\"ready\"") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::fprintf(stderr, "segd-load: %u rule segments ready in %.2f s\n", options.rules,
               std::chrono::duration<double>(Clock::now() - start).count());
  return true;
}

bool ParseFlags(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--load" || flag == "--load-only") {
      o->load = true;
      o->load_only = flag == "--load-only";
      continue;
    }
    if (flag == "--json") {
      o->json = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "segd-load: %s needs a value (see --help)\n", flag.c_str());
      return false;
    }
    std::string v = argv[++i];
    bool ok = true;
    uint64_t n = 0;
    if (flag == "--host") {
      o->host = v;
    } else if (flag == "--port") {
      ok = absl::SimpleAtoi(v, &n) && n > 0 && n < 65536;
      o->port = static_cast<uint16_t>(n);
    } else if (flag == "--workload") {
      auto w = ParseWorkload(v);
      ok = w.ok();
      if (ok) o->workload.workload = *w;
    } else if (flag == "--connections") {
      ok = absl::SimpleAtoi(v, &o->connections) && o->connections > 0 && o->connections <= 10000;
    } else if (flag == "--pipeline") {
      ok = absl::SimpleAtoi(v, &o->pipeline) && o->pipeline > 0 && o->pipeline <= 1024;
    } else if (flag == "--rate") {
      ok = absl::SimpleAtod(v, &o->rate) && o->rate >= 0;
    } else if (flag == "--duration") {
      ok = absl::SimpleAtod(v, &o->duration) && o->duration > 0;
    } else if (flag == "--threads") {
      ok = absl::SimpleAtoi(v, &o->threads) && o->threads > 0 && o->threads <= 64;
    } else if (flag == "--users") {
      ok = absl::SimpleAtoi(v, &o->dataset.users) && o->dataset.users > 0;
    } else if (flag == "--segments") {
      ok = absl::SimpleAtoi(v, &o->dataset.segments) && o->dataset.segments > 0;
    } else if (flag == "--seed") {
      ok = absl::SimpleAtoi(v, &o->dataset.seed);
    } else if (flag == "--ids") {
      ok = v == "hashed" || v == "decimal";
      o->dataset.ids = v == "decimal" ? IdFormat::kDecimal : IdFormat::kHashed;
    } else if (flag == "--ttl") {
      ok = absl::SimpleAtoi(v, &o->dataset.ttl_seconds);
    } else if (flag == "--segment") {
      ok = absl::SimpleAtoi(v, &o->workload.segment) && o->workload.segment > 0;
    } else if (flag == "--expr") {
      // Sent inside a JSON string as is.
      ok = !v.empty() && v.find_first_of("\"\\") == std::string::npos;
      o->workload.expr = v;
    } else if (flag == "--dump") {
      auto f = ParseDumpFormat(v);
      ok = f.ok();
      if (ok) o->dump = *f;
    } else if (flag == "--batch") {
      ok = absl::SimpleAtoi(v, &o->workload.batch) && o->workload.batch > 0 &&
           o->workload.batch <= 10000;
    } else if (flag == "--event-types") {
      ok = absl::SimpleAtoi(v, &o->workload.event_types) && o->workload.event_types > 0 &&
           o->workload.event_types <= 10000;
    } else if (flag == "--trait-fraction") {
      ok = absl::SimpleAtod(v, &o->workload.trait_fraction) && o->workload.trait_fraction >= 0 &&
           o->workload.trait_fraction <= 1;
    } else if (flag == "--rules") {
      ok = absl::SimpleAtoi(v, &o->rules) && o->rules <= 10000;
    } else if (flag == "--write-fraction") {
      ok = absl::SimpleAtod(v, &o->workload.write_fraction) && o->workload.write_fraction >= 0 &&
           o->workload.write_fraction <= 1;
    } else {
      std::fprintf(stderr, "segd-load: unknown flag %s (see --help)\n", flag.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "segd-load: bad value '%s' for %s (see --help)\n", v.c_str(),
                   flag.c_str());
      return false;
    }
  }
  if (o->workload.segment > o->dataset.segments) {
    std::fprintf(stderr, "segd-load: --segment %u is past --segments %u\n", o->workload.segment,
                 o->dataset.segments);
    return false;
  }
  return true;
}

// Prints the figures; returns how many requests failed (an error status or a broken connection).
uint64_t Report(const Options& o, Results& r, double seconds) {
  const LatencyHistogram& h = r.latency;
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  uint64_t errors = r.io_errors;
  for (const auto& [status, n] : r.statuses) {
    if (status >= 400) errors += n;
  }
  double rps = static_cast<double>(h.count()) / seconds;
  // Events per second, for the events workload (each answered request carried --batch).
  const bool events = o.workload.workload == Workload::kEvents;
  const double eps = events ? rps * o.workload.batch : 0;
  if (o.json) {
    std::string statuses;
    for (const auto& [status, n] : r.statuses) {
      absl::StrAppend(&statuses, statuses.empty() ? "" : ",", "\"", status, "\":", n);
    }
    std::printf(
        "{\"workload\":\"%s\",\"connections\":%u,\"pipeline\":%u,\"rate\":%.0f,\"seconds\":%.3f,"
        "\"requests\":%llu,\"requests_per_second\":%.1f,\"latency_us\":{\"p50\":%.1f,"
        "\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
        "\"events_per_second\":%.1f,\"statuses\":{%s},\"io_errors\":%llu,\"errors\":%llu}\n",
        WorkloadName(o.workload.workload), o.connections, o.pipeline, o.rate, seconds,
        static_cast<unsigned long long>(h.count()), rps, us(h.Percentile(0.5)),
        us(h.Percentile(0.9)), us(h.Percentile(0.99)), us(h.Percentile(0.999)), us(h.max()),
        h.mean() / 1000.0, eps, statuses.c_str(), static_cast<unsigned long long>(r.io_errors),
        static_cast<unsigned long long>(errors));
    return errors;
  }
  std::printf("\nworkload %s, %u connections, %s, %.1f s\n", WorkloadName(o.workload.workload),
              o.connections,
              o.rate > 0 ? absl::StrFormat("open loop at %.0f/s", o.rate).c_str()
                         : absl::StrFormat("closed loop, pipeline %u", o.pipeline).c_str(),
              seconds);
  std::printf("%-12s %12s %10s %10s %10s %10s %10s\n", "requests", "req/s", "p50 us", "p90 us",
              "p99 us", "p99.9 us", "max us");
  std::printf("%-12llu %12.0f %10.1f %10.1f %10.1f %10.1f %10.1f\n",
              static_cast<unsigned long long>(h.count()), rps, us(h.Percentile(0.5)),
              us(h.Percentile(0.9)), us(h.Percentile(0.99)), us(h.Percentile(0.999)), us(h.max()));
  if (events) std::printf("events/s     %12.0f (%u a request)\n", eps, o.workload.batch);
  std::printf("statuses:");
  for (const auto& [status, n] : r.statuses) {
    std::printf(" %u=%llu", status, static_cast<unsigned long long>(n));
  }
  std::printf("; connection errors: %llu\n", static_cast<unsigned long long>(r.io_errors));
  return errors;
}

// Whether segd answers at `endpoint`: a GET /health before the run, so that a wrong port or a
// stopped server is one clear message, not a table of zeros.
bool Reachable(const tcp::endpoint& endpoint) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  stream.expires_after(std::chrono::seconds(5));
  stream.connect(endpoint, ec);
  if (ec) {
    std::fprintf(stderr, "segd-load: cannot connect to %s:%u: %s\n",
                 endpoint.address().to_string().c_str(), endpoint.port(), ec.message().c_str());
    return false;
  }
  unsigned status = Send(stream, http::verb::get, "/health", "", "");
  if (status != 200) {
    std::fprintf(stderr, "segd-load: %s:%u answered GET /health with %u; is it segd?\n",
                 endpoint.address().to_string().c_str(), endpoint.port(), status);
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseFlags(argc, argv, &options)) return 2;
  beast::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) {
    std::fprintf(stderr, "segd-load: --host must be an IP address\n");
    return 2;
  }
  tcp::endpoint endpoint(address, options.port);
  Dataset dataset(options.dataset);
  if (options.dump) {
    auto rows = DumpDataset(dataset, *options.dump, std::time(nullptr), stdout);
    if (!rows.ok()) {
      std::fprintf(stderr, "segd-load: %s\n", std::string(rows.status().message()).c_str());
      return 1;
    }
    return 0;
  }
  if (!Reachable(endpoint)) return 1;
  if (options.rules > 0 && !CreateRules(options, endpoint)) return 1;
  if (options.load) {
    std::optional<LoadFigures> loaded = LoadDataset(options, dataset, endpoint);
    if (!loaded) return 1;
    if (options.load_only) {
      if (options.json) {
        std::printf("{\"memberships\":%llu,\"seconds\":%.3f,\"memberships_per_second\":%.1f}\n",
                    static_cast<unsigned long long>(loaded->memberships), loaded->seconds,
                    loaded->memberships / loaded->seconds);
      }
      return 0;
    }
  }

  Results results;  // outlives the io_context: connections merge into it when destroyed
  auto ioc_owner = std::make_unique<asio::io_context>();
  asio::io_context& ioc = *ioc_owner;
  Clock::time_point start = Clock::now();
  Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options.duration));
  for (uint32_t c = 0; c < options.connections; ++c) {
    std::make_shared<Connection>(ioc, options, dataset,
                                 Dataset::Mix(options.dataset.seed * 7919 + c), results, end)
        ->Start(endpoint);
  }
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    uint64_t last = 0;
    while (!finished.load()) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      if (finished.load()) break;
      // Answers still missing 5 s after the end will not be waited for.
      if (Clock::now() > end + std::chrono::seconds(5)) ioc.stop();
      uint64_t now = results.answered.load();
      std::fprintf(stderr, "segd-load: %5.1f s  %10llu answers  %9llu/s\n",
                   std::chrono::duration<double>(Clock::now() - start).count(),
                   static_cast<unsigned long long>(now),
                   static_cast<unsigned long long>(now - last));
      last = now;
    }
  });
  std::vector<std::thread> threads;
  for (uint32_t t = 1; t < options.threads; ++t) threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (std::thread& t : threads) t.join();
  finished.store(true);
  progress.join();
  ioc_owner.reset();  // connections still queued in it (after a stop) merge their figures now
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Requests are counted over the sending period; answers to the last ones arrive just after.
  const uint64_t failed = Report(options, results, std::min(seconds, options.duration));
  const uint64_t sent = results.latency.count() + results.io_errors;
  if (results.latency.count() == 0) {
    std::fprintf(stderr, "segd-load: no request was answered\n");
    return 1;
  }
  if (failed * 2 > sent) {
    std::fprintf(stderr,
                 "segd-load: %llu of %llu requests failed (see the statuses above); the figures "
                 "measure errors, not the workload\n",
                 static_cast<unsigned long long>(failed), static_cast<unsigned long long>(sent));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace segd::load

int main(int argc, char** argv) { return segd::load::Main(argc, argv); }
