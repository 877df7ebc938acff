#include "server/resp/resp_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "server/resp/resp_writer.h"

namespace segd::server::resp {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxReadChunk = 1 << 20;

// What Redis allows a client that has not authenticated yet.
constexpr RespLimits kUnauthenticatedLimits{
    .max_args = 10, .max_bulk = 16 * 1024, .max_command = 256 * 1024, .max_inline = 16 * 1024};

RespLimits NormalLimits(const ServerConfig& config) {
  RespLimits limits;
  limits.max_command = config.max_import_body;
  return limits;
}

}  // namespace

RespSession::RespSession(RespHost& host, detail::Socket&& socket)
    : host_(host),
      commands_(host.commands),
      config_(host.config),
      socket_(std::move(socket)),
      parser_(NormalLimits(host.config)) {
  in_.max_size(config_.max_import_body + kMaxReadChunk + 64);
  client_.id = commands_.NextClientId();
  client_.connected_at = std::time(nullptr);
  beast::error_code ec;
  const tcp::endpoint peer = socket_.remote_endpoint(ec);
  if (!ec) {
    client_.ip = peer.address().to_string();
    client_.address = absl::StrCat(client_.ip, ":", peer.port());
  }
  UpdateLimits();
}

RespSession::~RespSession() {
  host_.registry.Remove(this);
  host_.metrics.ConnectionClosed();
}

void RespSession::Run() {
  host_.registry.Add(this);
  if (host_.tls != nullptr) {
    tls_ = std::make_unique<detail::TlsStream>(socket_, *host_.tls);
  }
  WhenReady(
      socket_, tls_.get(), std::chrono::seconds(config_.read_timeout_seconds),
      [self = shared_from_this()] { self->Read(); },
      [self = shared_from_this()] { self->Close(); });
}

void RespSession::OnDeadline() {
  if (closed_) return;
  host_.metrics.ConnectionTimedOut();
  Close();
}

void RespSession::OnDrain() {
  draining_ = true;
  if (reading_ && !command_started_ && in_.size() == 0) Close();
}

void RespSession::UpdateLimits() {
  const bool tight = commands_.MustAuthenticate(client_);
  if (tight == tight_limits_) return;
  tight_limits_ = tight;
  parser_.set_limits(tight ? kUnauthenticatedLimits : NormalLimits(config_));
}

void RespSession::Process() {
  if (closed_ || waiting_ || write_in_flight_) return;
  const bool durable = config_.durability == storage::Durability::kFsync;
  AddGatherer::Adds adds;  // single-member SADDs parsed, not yet applied
  while (!close_after_write_ && out_.size() < kMaxPendingOutput) {
    UpdateLimits();
    const absl::string_view input(static_cast<const char*>(in_.data().data()), in_.size());
    size_t consumed = 0;
    const RespParser::Result result = parser_.Next(input, &args_, &consumed);
    if (result == RespParser::Result::kError) {
      // Gathered SADDs answer first; the next Process meets the error again.
      if (!adds.empty()) break;
      RespWriter(&out_, client_.protocol).Error(absl::StrCat("ERR ", parser_.error()));
      in_.consume(in_.size());
      close_after_write_ = true;
      break;
    }
    if (result == RespParser::Result::kNeedMore) {
      in_.consume(consumed);
      break;
    }
    command_started_ = false;
    if (commands_.IsBatchableAdd(client_, args_)) {
      adds.emplace_back(args_[1], args_[2]);
      in_.consume(consumed);
      continue;
    }
    // Another command waits for the gathered SADDs before it (the parser meets it again).
    if (!adds.empty()) break;
    if (durable && commands_.Mutates(args_[0])) {
      // This command and the complete ones after it run on a durable-write worker, in order.
      std::vector<std::vector<std::string>> batch;
      for (;;) {
        batch.emplace_back(args_.begin(), args_.end());
        in_.consume(consumed);
        const absl::string_view rest(static_cast<const char*>(in_.data().data()), in_.size());
        const RespParser::Result next = parser_.Next(rest, &args_, &consumed);
        // An error is met again by the next Process (the parser restarts at the same bytes).
        if (next == RespParser::Result::kNeedMore) in_.consume(consumed);
        if (next != RespParser::Result::kCommand) break;
      }
      RunDurable(std::move(batch));
      return;
    }
    commands_.Execute(client_, args_, &out_);
    in_.consume(consumed);
    if (client_.close) close_after_write_ = true;
  }
  if (!adds.empty()) {
    RunGathered(std::move(adds));
    return;
  }
  if (in_.size() > 0 && !command_started_ && !close_after_write_) {
    command_started_ = true;
    command_deadline_ = detail::DeadlineNow() + int64_t{config_.read_timeout_seconds} * 1000;
  }
  if (!out_.empty()) {
    Write();
  } else if (close_after_write_) {
    Close();
  } else {
    Read();
  }
}

void RespSession::RunDurable(std::vector<std::vector<std::string>> batch) {
  waiting_ = true;
  asio::post(host_.durable_writers, [self = shared_from_this(), batch = std::move(batch)] {
    std::string replies;
    std::vector<absl::string_view> args;
    for (const std::vector<std::string>& command : batch) {
      args.assign(command.begin(), command.end());
      self->commands_.Execute(self->client_, args, &replies);
      if (self->client_.close) break;
    }
    auto executor = self->socket_.get_executor();
    asio::post(executor, [self, replies = std::move(replies)] {
      self->waiting_ = false;
      if (self->closed_) return;
      self->out_.append(replies);
      if (self->client_.close) self->close_after_write_ = true;
      self->Process();
    });
  });
}

void RespSession::RunGathered(AddGatherer::Adds adds) {
  waiting_ = true;
  host_.adds.Submit(std::move(adds), [self = shared_from_this()](std::string replies) {
    auto executor = self->socket_.get_executor();
    asio::post(executor, [self, replies = std::move(replies)] {
      self->waiting_ = false;
      if (self->closed_) return;
      self->out_.append(replies);
      self->Process();
    });
  });
}

void RespSession::Read() {
  if (reading_ || closed_) return;
  if (draining_ && !command_started_ && in_.size() == 0) {
    Close();
    return;
  }
  reading_ = true;
  if (command_started_) {
    ExpireReadAt(command_deadline_);
  } else if (config_.resp_idle_timeout_seconds > 0) {
    ExpireReadAfter(std::chrono::seconds(config_.resp_idle_timeout_seconds));
  }
  size_t want = kReadChunk;
  if (parser_.needed() > in_.size()) {
    want = std::clamp<size_t>(parser_.needed() - in_.size(), kReadChunk, kMaxReadChunk);
  }
  want = std::min(want, in_.max_size() - in_.size());
  auto on_read = [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->reading_ = false;
    self->ReadDone();
    if (ec) {
      self->Close();
      return;
    }
    self->in_.commit(n);
    self->Process();
  };
  if (tls_) {
    tls_->async_read_some(in_.prepare(want), std::move(on_read));
  } else {
    socket_.async_read_some(in_.prepare(want), std::move(on_read));
  }
}

void RespSession::Write() {
  if (write_in_flight_ || closed_) return;
  writing_.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  ExpireWriteAfter(std::chrono::seconds(config_.read_timeout_seconds));
  auto on_written = [self = shared_from_this()](beast::error_code ec, size_t) {
    self->write_in_flight_ = false;
    self->writing_.clear();
    self->WriteDone();
    if (ec) {
      self->Close();
      return;
    }
    if (self->close_after_write_ && self->out_.empty()) {
      self->Close();
      return;
    }
    self->Process();
  };
  if (tls_) {
    asio::async_write(*tls_, asio::buffer(writing_), std::move(on_written));
  } else {
    asio::async_write(socket_, asio::buffer(writing_), std::move(on_written));
  }
}

void RespSession::Close() {
  if (closed_) return;
  closed_ = true;
  ReadDone();
  WriteDone();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
}

}  // namespace segd::server::resp
