// TCP options for the broker connection, which Paho C opens and offers no socket option
// for. With Nagle's algorithm on either end, a small MQTT packet waits until the other
// end acknowledges the previous one, and Linux delays that ACK by up to 40 ms when it
// has nothing to send back (a PUBACK or SUBACK arriving, for instance): measured,
// `linewire run DEVICE echo` took 160 ms on a stock mosquitto, 21 ms with TCP_NODELAY
// and TCP_QUICKACK here (bench/README.md, "On a stock broker").
#pragma once

#include <string_view>

namespace linewire::protocol {

// Sets TCP_NODELAY on every connected TCP socket of this process (found through
// /proc/self/fd) and returns the one whose peer port is `broker_port`, or -1. Called
// once Paho reports a connection: the process's other TCP sockets are the WebSocket
// listener's accepted connections, which have TCP_NODELAY already. Safe from any thread.
int tune_broker_socket(int broker_port);

// The port of a broker URL (`mqtt://host:1883`, `ssl://host`, `ws://host:9001/mqtt`),
// the scheme's usual one when it has none.
int url_port(std::string_view url);

// Acknowledges what `fd` has received now instead of after the delayed-ACK timer, and
// leaves Linux's delayed-ACK ("pingpong") mode until this end sends again. Called when
// a packet from the broker arrived that we send nothing back for: the broker's Nagle
// holds whatever it has for us next until that ACK. No-op for fd < 0. One syscall.
void quick_ack(int fd);

}  // namespace linewire::protocol
