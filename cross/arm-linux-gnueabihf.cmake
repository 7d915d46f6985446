# Cross-compiling linewire for armhf (arm-linux-gnueabihf) on Debian bookworm against Debian multiarch
# libraries (dpkg --add-architecture armhf; cross/install-deps.sh armhf installs them).
# Used by cross/build.sh armhf; by hand:
#   cmake -S . -B build-armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=cross/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
# Multiarch: the target's libraries and CMake packages live in /usr/lib/arm-linux-gnueabihf
# and are found through this; shared headers stay in /usr/include.
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig)
# Boost is used header-only: its headers are the same for every architecture, and its
# CMake package (arch-specific, in the host's multiarch folder) is not needed.
set(Boost_NO_BOOST_CMAKE ON)
# yaml-cpp: see cross/yaml-cpp/yaml-cpp-config.cmake.
set(yaml-cpp_DIR ${CMAKE_CURRENT_LIST_DIR}/yaml-cpp)
# Test programs run under qemu-user. Without -L: the binary's loader is the multiarch
# one (libc6:armhf), and mixing in /usr/arm-linux-gnueabihf's glibc hangs after fork() (DESIGN.md).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm)
# The Debian architecture of the package cpack builds (packaging/package.cmake).
set(LINEWIRE_DEB_ARCH armhf CACHE STRING "Debian architecture of the package")
