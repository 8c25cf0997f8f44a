#pragma once
// Register-level driver of the STM32 embedded-flash interfaces through a MEM-AP: unlock
// and lock, page/sector and mass erase, status flags and protection. Programming itself
// runs on the target (the loader, flash/loader.hpp); this driver prepares and erases.
//
// F1/F3: PM0075 (STM32F10xxx flash programming manual) 2.3 and 3, RM0316 4. F4/F7:
// RM0090 3, RM0385 3 (RM0410 3 for the F76x). Every BSY wait has a deadline from the
// datasheet's maximum operation time plus a margin.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flash/chip.hpp"

namespace probefarm::protocol {
class MemAp;
}

namespace probefarm::flash {

struct ProtectionState {
  unsigned rdp_level = 0;  // read protection: 0 none, 1, 2 (debug disabled for good)
  // Per entry of ChipInfo::sectors: true when the option bytes write-protect it.
  std::vector<bool> write_protected;
};

class Stm32Flash {
 public:
  Stm32Flash(protocol::MemAp& mem, const ChipInfo& chip);

  bool locked();
  // KEYR key sequence (PM0075 2.3.1, register map 3.1; RM0090 3.5.1). Does nothing when already
  // unlocked: the F4/F7 interface locks up until reset on a second sequence.
  // Throws Error(protection) when the interface stays locked (locked up by a wrong key).
  void unlock();
  void lock();

  // Erases chip.sectors[index] (a page on F1/F3). The interface must be unlocked. Throws
  // Error naming the flag the controller raised, Error(timeout) when BSY does not clear.
  void erase_sector(std::size_t index, unsigned psize);
  // MER (both banks' MER/MER1 on a dual-bank F42x/43x).
  void mass_erase(unsigned psize);

  // The read protection level and write-protected sectors from FLASH_OBR/WRPR (F1/F3) or
  // FLASH_OPTCR/OPTCR1 (F4/F7).
  ProtectionState protection();
  // Throws Error(protection) when read protection is active or one of the sectors (indexes
  // into chip.sectors) is write-protected, naming it and saying how to remove the protection.
  void check_writable(std::span<const std::size_t> sectors);
  // Throws Error(protection) explaining `probefarm unlock` when read protection is active
  // and [address, address + size) touches the main flash (the debugger's reads would end
  // in bus errors).
  void check_readable(std::uint32_t address, std::uint32_t size);

  std::uint32_t status();
  // Clears EOP and every error flag (write 1 to clear).
  void clear_status();

  // The error flags of FLASH_SR for this style, and their names ("PGERR", "WRPRTERR").
  std::uint32_t error_mask() const;
  std::string error_names(std::uint32_t sr) const;
  // Throws the Error an SR value with error flags calls for: `what` names the operation,
  // `address` the place ("erase of sector 5 at 0x08020000").
  [[noreturn]] void throw_flash_error(std::uint32_t sr, const std::string& what) const;

 private:
  std::uint32_t reg(std::uint32_t offset) const { return chip_.flash_regs + offset; }
  // Polls SR until BSY clears, at most `max_ms` (+ margin) of wall time.
  std::uint32_t wait_idle(std::uint32_t max_ms, const std::string& what);
  [[noreturn]] void throw_read_protected(unsigned level) const;
  void start_and_wait(std::uint32_t cr, std::uint32_t max_ms, const std::string& what);

  protocol::MemAp& mem_;
  const ChipInfo& chip_;
};

}  // namespace probefarm::flash
