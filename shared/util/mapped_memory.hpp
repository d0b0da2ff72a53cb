#pragma once
// Anonymous memory mapped for one owner alone. Its pages read as zero and cost nothing until
// first written, and they go back to the kernel when the owner goes. Two uses:
//  - Pages::Huge, in transparent huge pages where the kernel gives them: for buffers read from
//    end to end over and over, like rearranged weight matrices, which decode streams per token;
//  - Pages::Small, grown in place: for buffers filled from the front, like a sequence's KV cache,
//    whose unwritten tail must not cost a page fault and a clear (on this virtual machine a 4 KiB
//    fault costs about 2.5 us).
#include <cstddef>
#include <cstdint>

namespace lb {

class MappedMemory {
 public:
  enum class Pages { Small, Huge };

  MappedMemory() = default;  // holds nothing
  // Throws Error, naming the size, when the memory cannot be mapped.
  explicit MappedMemory(size_t bytes, Pages pages = Pages::Small);
  ~MappedMemory();
  MappedMemory(MappedMemory&& other) noexcept;
  MappedMemory& operator=(MappedMemory&& other) noexcept;
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return bytes_; }
  // Grows to `bytes` (no-op when not larger), keeping the contents: the kernel moves the pages
  // rather than copying them, and the new ones read as zero. Throws Error as the constructor.
  void grow(size_t bytes);

 private:
  void release();

  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace lb
