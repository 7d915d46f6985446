// The one translation unit that compiles Asio's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION): every other file includes only declarations,
// which keeps each compile short on a 2-core machine.
#include <boost/asio/impl/src.hpp>
