// systemd notifications (agent/sd_notify.hpp): NOTIFY_SOCKET addresses (paths and
// '@' abstract names), the watchdog interval, and messages over a real socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <filesystem>
#include <string>

#include "agent/sd_notify.hpp"

namespace sd = linewire::agent::sd;
using namespace std::chrono_literals;

namespace {

// A bound datagram socket standing in for systemd; receives with a 5 s bound.
struct Listener {
  explicit Listener(const sd::Address& a) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.length) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Listener() { ::close(fd); }
  std::string receive() const {
    char buf[512];
    auto n = ::recv(fd, buf, sizeof buf, 0);
    return n < 0 ? std::string("(nothing)") : std::string(buf, static_cast<std::size_t>(n));
  }
  int fd;
};

}  // namespace

TEST_CASE("a path in NOTIFY_SOCKET is sent to with its terminating NUL", "[sd_notify]") {
  auto a = sd::notify_address("/run/systemd/notify");
  REQUIRE(a);
  CHECK(a->addr.sun_family == AF_UNIX);
  CHECK(std::string(a->addr.sun_path) == "/run/systemd/notify");
  CHECK(a->length == offsetof(sockaddr_un, sun_path) + 20);
}

TEST_CASE("'@' in NOTIFY_SOCKET is an abstract name: a leading NUL, no terminator", "[sd_notify]") {
  auto a = sd::notify_address("@sd-notify/1");
  REQUIRE(a);
  CHECK(a->addr.sun_path[0] == '\0');
  CHECK(std::string(a->addr.sun_path + 1, 11) == "sd-notify/1");
  CHECK(a->length == offsetof(sockaddr_un, sun_path) + 12);
}

TEST_CASE("NOTIFY_SOCKET values that cannot be used", "[sd_notify]") {
  CHECK_FALSE(sd::notify_address(""));
  CHECK_FALSE(sd::notify_address("@"));
  CHECK_FALSE(sd::notify_address("relative/path"));
  CHECK_FALSE(sd::notify_address("vsock:2:1234"));
  CHECK_FALSE(sd::notify_address("/" + std::string(sizeof(sockaddr_un::sun_path), 'x')));
  CHECK(sd::notify_address("@" + std::string(sizeof(sockaddr_un::sun_path) - 1, 'x')));
  CHECK_FALSE(sd::Notifier("").enabled());
  CHECK_FALSE(sd::Notifier("").notify("READY=1"));
}

TEST_CASE("the watchdog is fed at half of WATCHDOG_USEC, only for our pid", "[sd_notify]") {
  CHECK(sd::watchdog_interval("30000000", nullptr, 42) == 15s);
  CHECK(sd::watchdog_interval("30000000", "", 42) == 15s);
  CHECK(sd::watchdog_interval("30000000", "42", 42) == 15s);
  CHECK_FALSE(sd::watchdog_interval("30000000", "43", 42));
  CHECK_FALSE(sd::watchdog_interval("30000000", "x", 42));
  CHECK_FALSE(sd::watchdog_interval(nullptr, nullptr, 42));
  CHECK_FALSE(sd::watchdog_interval("0", nullptr, 42));
  CHECK_FALSE(sd::watchdog_interval("-5", nullptr, 42));
  CHECK_FALSE(sd::watchdog_interval("10s", nullptr, 42));
  CHECK(sd::watchdog_interval("1", nullptr, 42) == 1ms);  // floor: never a busy loop
}

TEST_CASE("RELOADING=1 carries MONOTONIC_USEC", "[sd_notify]") {
  CHECK(sd::reloading_message(123456) == "RELOADING=1\nMONOTONIC_USEC=123456");
  auto a = sd::monotonic_usec();
  auto b = sd::monotonic_usec();
  CHECK(b >= a);
}

TEST_CASE("messages arrive as datagrams on a path socket", "[sd_notify]") {
  auto path = std::filesystem::temp_directory_path() /
              ("lw-notify-" + std::to_string(::getpid()) + ".sock");
  std::filesystem::remove(path);
  auto a = sd::notify_address(path.string());
  REQUIRE(a);
  Listener systemd(*a);
  sd::Notifier n(path.string());
  REQUIRE(n.enabled());
  CHECK(n.notify("READY=1"));
  CHECK(n.notify("WATCHDOG=1"));
  CHECK(systemd.receive() == "READY=1");
  CHECK(systemd.receive() == "WATCHDOG=1");
  std::filesystem::remove(path);
  CHECK_FALSE(n.notify("STOPPING=1"));  // nobody listens any more
}

TEST_CASE("messages arrive on an abstract socket", "[sd_notify]") {
  const std::string name = "@linewire-test-notify-" + std::to_string(::getpid());
  auto a = sd::notify_address(name);
  REQUIRE(a);
  Listener systemd(*a);
  sd::Notifier n(name);
  CHECK(n.notify("STOPPING=1"));
  CHECK(systemd.receive() == "STOPPING=1");
}
