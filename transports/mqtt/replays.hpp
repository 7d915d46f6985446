// Replays of kept output over MQTT (docs/protocol.md §12): each kept line from the
// asked one on REPLY/out and REPLY/err, with its seq, then a summary on REPLY. At most
// kActive replays are under way at once, kWaiting more wait their turn, past that a
// request is refused `busy`. Lines go out through the same Paho queue as live lines and
// only while it is below limits.buffer, a bounded batch per turn of the io_context,
// so a replay of a big history never grows memory and never holds other runs' live
// lines back by more than what that queue already holds.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "protocol/request.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {
class Agent;
}

namespace linewire::mqtt {

class Client;

class Replays {
 public:
  static constexpr std::size_t kActive = 4;
  static constexpr std::size_t kWaiting = 32;
  static constexpr std::size_t kBatch = 256;  // lines per replay per turn

  struct Reply {
    std::string topic;
    std::optional<std::string> correlation;        // MQTT 5 Correlation Data
    std::optional<std::string> correlation_field;  // 3.1.1 `correlation`, echoed in JSON
  };

  Replays(boost::asio::io_context& io, agent::Agent& agent, Client& client, int qos);
  ~Replays();
  Replays(const Replays&) = delete;
  Replays& operator=(const Replays&) = delete;

  // Queues a replay of `run` (which the agent's history knows). busy when too many wait.
  std::optional<protocol::Error> add(std::string run, const protocol::ReplayRequest& request,
                                     Reply reply);
  // The output queue drained: go on.
  void resume();
  std::size_t under_way() const { return active_.size() + waiting_.size(); }

 private:
  struct Job {
    std::string run;
    protocol::ReplayRequest request;
    Reply reply;
    std::string out_topic;  // REPLY/out and REPLY/err, made once
    std::string err_topic;
    std::uint64_t pos = 0;  // the next History position to look at
    std::optional<std::uint64_t> first_out, last_out, first_err, last_err;
    bool forgotten = false;  // its run's history went while it was replayed
  };

  void schedule();
  void pump();
  bool step(Job& job);  // false once the job is done
  void finish(Job& job);

  boost::asio::io_context& io_;
  agent::Agent& agent_;
  Client& client_;
  int qos_;
  std::deque<Job> active_;
  std::deque<Job> waiting_;
  bool scheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posted turns
};

}  // namespace linewire::mqtt
