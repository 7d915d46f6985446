#include "transports/websocket/any_stream.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <type_traits>

namespace linewire::websocket {

namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;

namespace {

// Asio 1.81's any_completion_executor (the associated executor of an
// any_completion_handler) cannot be required to be blocking.never, which Beast's
// operations ask of a handler's executor before they post to it. Bound to the
// stream's own executor, the handler answers with one that can.
template <class Handler>
auto bound(beast::tcp_stream& tcp, Handler handler) {
  return asio::bind_executor(tcp.get_executor(), std::move(handler));
}

// Completes a handler from the stream's executor, never inline: an initiating
// function must not call its handler before it returns.
void complete_later(beast::tcp_stream& tcp, AnyStream::DoneHandler handler, error_code ec) {
  asio::post(tcp.get_executor(),
             [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One real stream behind AnyStream: beast::tcp_stream or TlsStream.
template <class Stream>
class Model final : public AnyStream::Base {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  template <class... Args>
  explicit Model(Args&&... args) : stream_(std::forward<Args>(args)...) {}

  bool is_tls() const override { return kTls; }
  beast::tcp_stream& tcp() override {
    if constexpr (kTls)
      return stream_.next_layer();
    else
      return stream_;
  }
  void read_some(BufferList<asio::mutable_buffer> b, AnyStream::IoHandler h) override {
    stream_.async_read_some(b, bound(tcp(), std::move(h)));
  }
  void write_some(BufferList<asio::const_buffer> b, AnyStream::IoHandler h) override {
    stream_.async_write_some(b, bound(tcp(), std::move(h)));
  }
  void handshake(AnyStream::DoneHandler h) override {
    if constexpr (kTls)
      stream_.async_handshake(asio::ssl::stream_base::server, bound(tcp(), std::move(h)));
    else
      complete_later(stream_, std::move(h), {});
  }
  void shutdown(AnyStream::DoneHandler h) override {
    if constexpr (kTls) {
      stream_.async_shutdown(bound(tcp(), std::move(h)));
    } else {
      error_code ec;
      stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
      complete_later(stream_, std::move(h), ec);
    }
  }
  void teardown(beast::role_type role, AnyStream::DoneHandler h) override {
    using beast::websocket::async_teardown;
    async_teardown(role, stream_, bound(tcp(), std::move(h)));
  }
  void teardown_now(beast::role_type role, error_code& ec) override {
    using beast::websocket::teardown;
    teardown(role, stream_, ec);
  }

 private:
  Stream stream_;
};

}  // namespace

AnyStream AnyStream::plain(asio::ip::tcp::socket socket) {
  return AnyStream(std::make_unique<Model<beast::tcp_stream>>(std::move(socket)));
}

AnyStream AnyStream::tls(asio::ip::tcp::socket socket, asio::ssl::context& context) {
  return AnyStream(
      std::make_unique<Model<TlsStream>>(beast::tcp_stream(std::move(socket)), context));
}

}  // namespace linewire::websocket
