# Cross build for Raspberry Pi 4/5 (64-bit Raspberry Pi OS / Debian 12, aarch64) on a Debian 12 host
# with the GNU cross toolchain (g++-aarch64-linux-gnu) and multiarch arm64 -dev packages
# (scripts/install-pi-deps.sh installs both). Libraries come from /usr/lib/aarch64-linux-gnu, headers
# from /usr/include; programs (protoc) are the host's. Tests run under qemu-aarch64-static.
#
# CPU flags (TSM_ARCH_FLAGS): -mcpu=cortex-a72. That is the Pi 4's core (ARMv8.0-A + CRC, NEON/ASIMD
# always on in AArch64) and tunes scheduling for it; the Pi 5's Cortex-A76 (ARMv8.2-A) runs every
# ARMv8.0 instruction, so one binary serves both boards. A Pi-5-only build can take
# -DTSM_ARCH_FLAGS="-mcpu=cortex-a76" (or -march=armv8.2-a+dotprod+fp16): the SDOT/UDOT dot-product
# and half-precision arithmetic help int8/fp16 kernels, but such a binary dies with SIGILL on a Pi 4.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Search libraries and CMake package files of the target architecture only; run host programs.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/cmake /lib/x86_64-linux-gnu)
set(PKG_CONFIG_EXECUTABLE aarch64-linux-gnu-pkg-config CACHE FILEPATH "")
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# protoc runs on the host (same protobuf version as the arm64 library: apt keeps them in step).
set(Protobuf_PROTOC_EXECUTABLE /usr/bin/protoc CACHE FILEPATH "host protoc")

set(TSM_ARCH_FLAGS "-mcpu=cortex-a72" CACHE STRING "Raspberry Pi 4 baseline; also runs on the Pi 5 (Cortex-A76)")

# ctest and gtest_discover_tests run the aarch64 test programs through qemu user emulation.
find_program(TSM_QEMU_AARCH64 qemu-aarch64-static qemu-aarch64)
if(TSM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${TSM_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu)
endif()

# Static executables: one file to copy to the Pi, no library versions to match there; and
# qemu-user 7.2 (Debian 12) hangs in pthread_create for dynamically linked aarch64 programs on this
# host (a two-line std::thread program hangs; the same program linked -static runs).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(OPENSSL_USE_STATIC_LIBS TRUE)
set(Protobuf_USE_STATIC_LIBS ON)
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libgomp.a OUTPUT_VARIABLE _tsm_gomp OUTPUT_STRIP_TRAILING_WHITESPACE)
set(OpenMP_gomp_LIBRARY ${_tsm_gomp} CACHE FILEPATH "static libgomp for -static executables")
