#pragma once

// RequestBody: the Beast body type of segd's request parser. Like beast::http::string_body, it
// appends the body to a std::string, with two differences that let HttpSession read a body as
// a stream of lines: it reserves at most kReserveCap up front however large the declared
// Content-Length (a 256 MiB import must not claim 256 MiB before its first byte), and the
// session may take text out of the string between calls to the parser's put.
//
// Thread safety: used by one session's strand only.

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <cstdint>
#include <string>

namespace segd::server::detail {

struct RequestBody {
  using value_type = std::string;
  static constexpr uint64_t kReserveCap = 1 << 20;

  static uint64_t size(const value_type& body) { return body.size(); }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<uint64_t>& length, boost::beast::error_code& ec) {
      if (length) body_.reserve(static_cast<size_t>(std::min<uint64_t>(*length, kReserveCap)));
      ec = {};
    }

    template <class ConstBufferSequence>
    size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      size_t n = 0;
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers); ++it) {
        boost::asio::const_buffer b = *it;
        body_.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      ec = {};
      return n;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace segd::server::detail
