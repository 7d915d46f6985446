// What every subcommand starts with: a connection, and bounded waits for what the
// broker has retained (SPEC §10: never hang).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/broker/connection.hpp"
#include "cli/broker/options.hpp"

namespace linewire::cli {

class Signer;

struct Context {
  BrokerOptions broker;
  std::string prefix;
  std::shared_ptr<const Signer> signer;  // --key: sign every request (SPEC §11)
};

// A number of seconds from the command line as a duration.
std::chrono::steady_clock::duration seconds(double s);

// How long the retained status of one device may take to arrive.
inline constexpr std::chrono::seconds kStatusWait{2};
// Collecting retained messages under a wildcard: done when the client's own marker
// message comes back after them (see collect_retained); where it does not (a broker
// ACL refusing it), once nothing new came for kQuiet, and never later than kCollectMax.
inline constexpr std::chrono::milliseconds kQuiet{300};
// After the marker came back: what a broker that sends retained messages out of order
// with the marker has left to send (see collect_retained).
inline constexpr std::chrono::milliseconds kAfterMarker{50};
inline constexpr std::chrono::seconds kCollectMax{2};

// The process's one connection: connected, or throws Failure. `streams`: this command
// shows a run's output, so with MQTT 3.1.1 stderr says once that duplicates cannot be
// detected (SPEC §2).
Connection& open_connection(const Context& ctx, bool streams);

// Ends the process: disconnects, then exits without destroying Paho's client, whose
// teardown (MQTTAsync_destroy) waits for its threads in 100 ms sleeps: a tenth of a
// second added to every `linewire run` for memory the kernel frees anyway.
[[noreturn]] void leave(int status);

// Subscribes to `filters`, then collects what arrives until the marker comes back,
// kQuiet passes with nothing new, or kCollectMax passes. Throws Interrupted on Ctrl-C.
std::vector<Incoming> collect_retained(Connection& c, const std::vector<std::string>& filters);

// Waits up to kStatusWait for a message on `topic` (a device's status); whatever else
// arrives meanwhile is appended to `backlog`. nullopt when none came.
std::optional<std::string> wait_for_status(Connection& c, const std::string& topic,
                                           std::vector<Incoming>& backlog);

// Why a device cannot take a request, for stderr; nullopt when it is online.
std::optional<std::string> offline_reason(const std::optional<std::string>& status,
                                          const std::string& device, const Connection& c);

}  // namespace linewire::cli
