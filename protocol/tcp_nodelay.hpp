// TCP_NODELAY for the broker connection, which Paho C opens and offers no socket
// option for. Without it, Nagle's algorithm holds a small MQTT packet back until the
// broker acknowledges the previous one, and the broker's delayed ACK makes that up to
// 40 ms: measured, a start request's first output line came back in 88 ms; with
// TCP_NODELAY here and mosquitto's `set_tcp_nodelay true`, 44 ms (bench/README.md,
// "Spawn round trip").
#pragma once

namespace linewire::protocol {

// Sets TCP_NODELAY on every connected TCP socket of this process (found through
// /proc/self/fd) and returns how many it set. Called once Paho reports a connection:
// the process's other TCP sockets are the WebSocket listener's accepted connections,
// which have it already. Safe from any thread.
int set_tcp_nodelay_on_connected_sockets();

}  // namespace linewire::protocol
