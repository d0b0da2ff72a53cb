#include "util/mapped_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "util/error.hpp"

namespace lb {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

[[noreturn]] void fail(size_t bytes) {
  throw Error("cannot allocate " + std::to_string(bytes) +
              " bytes of memory: " + std::strerror(errno));
}

}  // namespace

MappedMemory::MappedMemory(size_t bytes, Pages pages) : bytes_(bytes) {
  if (bytes == 0) return;
  // Huge pages: mapped from a 2 MiB boundary (the slack around it unmapped again at once), so
  // that every whole 2 MiB can be a huge page: about 87% of the 1.1B model's rearranged weight
  // bytes rather than the 55% the kernel's own placement gave.
  static const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const size_t slack = pages == Pages::Huge && bytes >= kHugePage ? kHugePage - page : 0;
  void* p =
      ::mmap(nullptr, bytes + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(bytes);
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = slack ? (start + slack) & ~uintptr_t(kHugePage - 1) : start;
  if (aligned > start) ::munmap(p, aligned - start);
  const uintptr_t end = (aligned + bytes + page - 1) & ~uintptr_t(page - 1);
  if (start + bytes + slack > end)
    ::munmap(reinterpret_cast<void*>(end), start + bytes + slack - end);
  // Hints either way (without transparent huge pages, everything is 4 KiB pages):
  //  - Huge: paired in one process on the 1.1B Q4_0 model (fresh copies, load order
  //    alternating), huge pages took about 2% off a decode token, and a whole model's load went
  //    from 1.5-2.3 s to 1.0-1.7 s;
  //  - Small: stays small where the kernel puts every region in huge pages, else a cache written
  //    a position at a time would be resident 2 MiB at a time.
  ::madvise(reinterpret_cast<void*>(aligned), bytes,
            pages == Pages::Huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  data_ = reinterpret_cast<uint8_t*>(aligned);
}

MappedMemory::~MappedMemory() {
  release();
}

MappedMemory::MappedMemory(MappedMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

MappedMemory& MappedMemory::operator=(MappedMemory&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MappedMemory::grow(size_t bytes) {
  if (bytes <= bytes_) return;
  if (!data_) {
    *this = MappedMemory(bytes);
    return;
  }
  void* p = ::mremap(data_, bytes_, bytes, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) fail(bytes);
  data_ = static_cast<uint8_t*>(p);
  bytes_ = bytes;
}

void MappedMemory::release() {
  if (data_) ::munmap(data_, bytes_);
  data_ = nullptr;
  bytes_ = 0;
}

}  // namespace lb
