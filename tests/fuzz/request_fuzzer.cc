// libFuzzer target for the request path: bytes in, parsed as one HTTP request by the same
// Beast parser and limits the server uses, answered by the real Api over a real engine and log.
// Fails (aborts) on a 5xx answer, a JSON answer that is not valid JSON, or any sanitizer report.
// Every input is answered twice: with access control off, and on with three fixed keys that
// corpus inputs may carry (kAdminKey, kReaderKey, and kScopedKey, a writer limited to "sp*").
//
// Built two ways: with -DSEGD_FUZZ=ON under clang as a libFuzzer binary, and always as
// request_fuzzer_replay, which runs the checked-in corpus as a regression test.

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/access/authenticator.h"
#include "server/api.h"
#include "server/config.h"
#include "server/request_framing.h"
#include "simdjson.h"
#include "storage/oplog.h"
#include "storage/report_store.h"
#include "tests/fuzz/fixed_keys.h"
#include "tests/testutil/temp_dir.h"

namespace {

namespace http = boost::beast::http;
using namespace segd;
using testutil::kAdminKey;
using testutil::kReaderKey;
using testutil::kScopedKey;
using testutil::WriteFixedKeys;

struct Fixture {
  Fixture() {
    config.max_body = 64 * 1024;
    config.max_check_body = 64 * 1024;
    config.max_import_body = 64 * 1024;
    log = std::move(storage::OpLog::Open(dir.path(), {}).value());
    engine = std::make_unique<engine::Engine>(engine::EngineOptions{nullptr, log.get()});
    reports = std::move(
        storage::ReportStore::Open(dir.path(), 3600 * 1000, engine::SystemClock::Default())
            .value());
    api = std::make_unique<server::Api>(*engine, *log, *reports, config, figures);
    WriteFixedKeys(dir.path());
    keys = std::move(server::access::KeyStore::Open(dir.path()).value());
    auth = std::make_unique<server::access::Authenticator>(*keys, nullptr);
    api->set_access(auth.get(), /*enforce=*/false);  // /v1/keys works, nothing is checked
    guarded = std::make_unique<server::Api>(*engine, *log, *reports, config, figures);
    guarded->set_access(auth.get(), /*enforce=*/true);
    // Something to find: two segments with members.
    for (const char* name : {"sport", "music"}) {
      engine::SegmentSpec spec;
      spec.name = name;
      (void)engine->CreateSegment(spec);
    }
    engine::UserUpdate update;
    update.add.push_back({"sport", std::nullopt, std::nullopt});
    (void)engine->UpdateUserSegments("u1", update);
  }

  testutil::TempDir dir;
  server::ServerConfig config;
  server::ServiceFigures figures;
  std::unique_ptr<storage::OpLog> log;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<storage::ReportStore> reports;
  std::unique_ptr<server::Api> api;
  std::unique_ptr<server::access::KeyStore> keys;
  std::unique_ptr<server::access::Authenticator> auth;
  std::unique_ptr<server::Api> guarded;  // access control on
};

Fixture& TheFixture() {
  static Fixture fixture;
  return fixture;
}

void Fail(const char* why, const server::Response& r) {
  std::fprintf(stderr, "request_fuzzer: %s: status %u body %s\n", why, r.status, r.body.c_str());
  std::abort();
}

// Answers one request through `api` and checks the answer.
void Answer(server::Api& api, server::Request& request) {
  absl::string_view path = request.target.substr(0, request.target.find('?'));
  server::RouteMatch match = api.Route(request.method, path);
  if (request.body.size() > api.BodyLimit(match)) return;  // the server answers 413
  server::Response response;
  api.Handle(request, match, response);
  if (response.blocking) {
    auto fill = std::move(response.blocking);
    response.blocking = nullptr;
    fill(response);
  }
  if (response.live) {
    // A long poll or an event stream: produced as at shutdown (answer with what there is).
    std::unique_ptr<server::LiveAnswer> live = std::move(response.live);
    const bool streamed = response.live_streamed;
    while (live->Produce(response, /*final=*/true) == server::LiveAnswer::Step::kMore) {
    }
    if (streamed) return;  // text/event-stream, not JSON
  }
  if (response.stream) {
    std::string chunk;
    for (;;) {
      absl::StatusOr<bool> more = response.stream(&chunk);
      if (!more.ok()) Fail("stream failed", response);
      if (!*more) break;
    }
  }
  if (response.status >= 500) Fail("5xx answer", response);
  if (response.content_type == server::kJsonType && !response.stream) {
    thread_local simdjson::dom::parser json;
    simdjson::dom::element element;
    if (json.parse(response.body).get(element)) Fail("invalid JSON answer", response);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = TheFixture();
  http::request_parser<http::string_body> parser;
  parser.header_limit(f.config.max_header);
  parser.body_limit(f.config.max_import_body);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) return 0;
  auto& req = parser.get();
  // What the connection rejects before routing (server/request_framing.h) never reaches the
  // Api; its answer is a 4xx by construction.
  if (server::HasObsoleteLineFolding(
          absl::string_view(reinterpret_cast<const char*>(data), size)) ||
      server::CheckRequestFraming(req.base())) {
    return 0;
  }
  for (server::Api* api : {f.api.get(), f.guarded.get()}) {
    server::Request request;
    request.method = absl::string_view(req.method_string().data(), req.method_string().size());
    request.target = absl::string_view(req.target().data(), req.target().size());
    if (auto it = req.find(http::field::content_type); it != req.end()) {
      request.content_type = absl::string_view(it->value().data(), it->value().size());
    }
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      request.authorization = absl::string_view(it->value().data(), it->value().size());
    }
    request.client_address = "192.0.2.1";
    request.body = req.body();
    Answer(*api, request);
  }
  return 0;
}
