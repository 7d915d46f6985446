// The one translation unit that compiles Beast's and Asio SSL's implementations
// (BOOST_BEAST_SEPARATE_COMPILATION, as agent/asio_impl.cpp does for Asio).
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
