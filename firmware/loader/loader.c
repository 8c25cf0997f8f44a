/* The on-target flash loader: CRC-32 (one range, or a table of them) and the ring-buffer streaming
 * programmer of loader_abi.h, for F1/F3 (PM0075, RM0316) and F2/F4/F7 (RM0090, RM0385) flash
 * controllers.
 *
 * Freestanding and position-fixed (linked at PF_LOADER_BASE by loader.ld): no vector
 * table, no startup code, no .data or .bss (nobody copies or zeroes them; loader.ld
 * refuses them). The debugger calls the entry points with arguments in r0..r3, SP on a
 * stack of its choosing and LR = header.bkpt | 1; they return to the BKPT, which halts the
 * core with the result in r0. */
#include <stdint.h>

#include "loader_abi.h"

/* Keeps the compiler from moving memory accesses across it: the host polls read_offset
 * over SWD, so it must not move before the flash write it reports. */
#define COMPILER_BARRIER() __asm__ volatile("" ::: "memory")
/* ARMv7-M ARM A7.7.26 DSB: the store to flash has completed before the next access. */
#define DSB() __asm__ volatile("dsb" ::: "memory")

#define REG(addr) (*(volatile uint32_t*)(addr))

/* Flash interface register offsets, the same on both styles: PM0075 3.1 (F1) and
 * RM0090 3.9 / RM0385 3.7 (F4/F7). */
#define FLASH_SR 0x0Cu
#define FLASH_CR 0x10u

/* PM0075 3.4 FLASH_SR / 3.5 FLASH_CR (RM0316 4.5.3 / 4.5.4 for the F3: same bits). */
#define F1_SR_BSY (1u << 0)
#define F1_SR_PGERR (1u << 2)
#define F1_SR_WRPRTERR (1u << 4)
#define F1_SR_EOP (1u << 5)
#define F1_CR_PG (1u << 0)

/* RM0090 3.9.4 FLASH_SR / 3.9.5 FLASH_CR; RM0385 3.7.4 / 3.7.5 (bit 7 is ERSERR there). */
#define F4_SR_EOP (1u << 0)
#define F4_SR_OPERR (1u << 1)
#define F4_SR_WRPERR (1u << 4)
#define F4_SR_PGAERR (1u << 5)
#define F4_SR_PGPERR (1u << 6)
#define F4_SR_PGSERR (1u << 7)
#define F4_SR_BSY (1u << 16)
#define F4_CR_PG (1u << 0)
#define F4_CR_PSIZE_SHIFT 8
#define F4_CR_PSIZE (3u << F4_CR_PSIZE_SHIFT)

/* A half-word program takes at most 70 us on the F1 (DS5319 table "Flash memory
 * characteristics", tprog), a word at most 100 us on the F4/F7 (DS8626 / DS10916). One
 * poll of FLASH_SR costs a few cycles plus the peripheral bus, so 2^20 polls outlast that
 * many times over even at 216 MHz, yet give up within about a second at 8 MHz. */
#define BSY_POLLS (1u << 20)

/* ------------------------------------------------------------------------------------- */
/* CRC-32 (IEEE 802.3 / zlib): reflected polynomial 0xEDB88320, one table lookup per byte.
 * The 1 KiB table is built by the compiler from the polynomial, so no magic numbers are
 * typed in and the image needs no RAM for it. */

#define CRC_POLY 0xEDB88320u
#define CRC_BIT(c) (((c) >> 1) ^ (CRC_POLY & (0u - ((c)&1u))))
#define CRC_ENTRY(n) \
  CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT((uint32_t)(n)))))))))
#define CRC_4(n) CRC_ENTRY(n), CRC_ENTRY((n) + 1), CRC_ENTRY((n) + 2), CRC_ENTRY((n) + 3)
#define CRC_16(n) CRC_4(n), CRC_4((n) + 4), CRC_4((n) + 8), CRC_4((n) + 12)
#define CRC_64(n) CRC_16(n), CRC_16((n) + 16), CRC_16((n) + 32), CRC_16((n) + 48)

static const uint32_t crc_table[256] = {CRC_64(0), CRC_64(64), CRC_64(128), CRC_64(192)};

/* Inlined: a call per byte would cost more than the lookup. */
static inline __attribute__((always_inline)) uint32_t crc_byte(uint32_t c, uint32_t byte) {
  return crc_table[(c ^ byte) & 0xFFu] ^ (c >> 8);
}

uint32_t pf_loader_crc32(uint32_t address, uint32_t length, uint32_t crc_in) {
  const uint8_t* p = (const uint8_t*)address;
  uint32_t c = ~crc_in;
  /* Whole words in the middle: flash is read 32 bits (or more) at a time anyway, so one
   * bus access per four bytes instead of four. */
  while (length > 0 && ((uint32_t)p & 3u) != 0) {
    c = crc_byte(c, *p++);
    --length;
  }
  const uint32_t* w = (const uint32_t*)p;
  for (; length >= 4; length -= 4) {
    const uint32_t v = *w++;
    c = crc_byte(c, v);
    c = crc_byte(c, v >> 8);
    c = crc_byte(c, v >> 16);
    c = crc_byte(c, v >> 24);
  }
  p = (const uint8_t*)w;
  while (length-- > 0)
    c = crc_byte(c, *p++);
  return ~c;
}

uint32_t pf_loader_crc32_ranges(struct pf_crc_range* table, uint32_t count) {
  /* Flags are checked first so that a rejected table leaves every entry as the host wrote
   * it, rather than half computed. */
  for (uint32_t i = 0; i < count; ++i) {
    if ((table[i].flags & ~PF_CRC_CHAIN) != 0) return PF_ERROR_ARGUMENT;
  }
  uint32_t previous = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t crc_in = (table[i].flags & PF_CRC_CHAIN) ? previous : table[i].crc;
    previous = pf_loader_crc32(table[i].address, table[i].length, crc_in);
    table[i].crc = previous;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------- */
/* Streaming programmer. */

/* Polls FLASH_SR until BSY clears; returns the last value read (BSY still set: timeout). */
static uint32_t wait_not_busy(uint32_t sr_addr, uint32_t bsy) {
  uint32_t sr = REG(sr_addr);
  for (uint32_t n = BSY_POLLS; (sr & bsy) != 0 && n > 0; --n)
    sr = REG(sr_addr);
  return sr;
}

/* Stores one programming unit of `size` bytes (the ring holds it little-endian, aligned). */
static void write_unit(uint32_t dst, uint32_t src, uint32_t size) {
  switch (size) {
    case 1:
      *(volatile uint8_t*)dst = *(const uint8_t*)src;
      break;
    case 2:
      *(volatile uint16_t*)dst = *(const uint16_t*)src;
      break;
    case 4:
      *(volatile uint32_t*)dst = *(const uint32_t*)src;
      break;
    default:
      /* x64 parallelism: two word writes over the 32-bit bus, low word first, at an
       * 8-byte aligned address (RM0090 3.6.4 "Standard programming" x64; RM0385 3.3.6). */
      *(volatile uint32_t*)dst = *(const uint32_t*)src;
      *(volatile uint32_t*)(dst + 4) = *(const uint32_t*)(src + 4);
      break;
  }
}

static int unit_is_erased(uint32_t src, uint32_t size) {
  if (size == 1) return *(const uint8_t*)src == 0xFFu;
  if (size == 2) return *(const uint16_t*)src == 0xFFFFu;
  uint32_t v = *(const uint32_t*)src;
  if (size == 8) v &= *(const uint32_t*)(src + 4);
  return v == 0xFFFFFFFFu;
}

uint32_t pf_loader_program(struct pf_program* p) {
  const uint32_t sr_addr = p->flash_regs + FLASH_SR;
  const uint32_t cr_addr = p->flash_regs + FLASH_CR;
  uint32_t unit;
  uint32_t bsy;
  uint32_t errors;
  uint32_t cr_pg;
  uint32_t eop;
  if (p->style == PF_STYLE_F1) {
    /* PM0075 2.3.3: the FPEC programs half-words only. */
    unit = 2;
    bsy = F1_SR_BSY;
    errors = F1_SR_PGERR | F1_SR_WRPRTERR;
    eop = F1_SR_EOP;
    cr_pg = F1_CR_PG;
  } else if (p->style == PF_STYLE_F4 && p->psize <= 3) {
    /* RM0090 3.6.2 / RM0385 3.3.4: the write width must match PSIZE. */
    unit = 1u << p->psize;
    bsy = F4_SR_BSY;
    errors = F4_SR_OPERR | F4_SR_WRPERR | F4_SR_PGAERR | F4_SR_PGPERR | F4_SR_PGSERR;
    eop = F4_SR_EOP;
    cr_pg = F4_CR_PG | (p->psize << F4_CR_PSIZE_SHIFT);
  } else {
    return PF_ERROR_ARGUMENT;
  }
  const uint32_t ring_mask = p->ring_size - 1;
  if (p->ring_size < 8 || (p->ring_size & ring_mask) != 0 || (p->ring & 7u) != 0 ||
      ((p->address | p->length) & (unit - 1)) != 0 || (p->read_offset & (unit - 1)) != 0) {
    return PF_ERROR_ARGUMENT;
  }

  /* Flags left by an earlier operation would be reported as ours: clear them (write 1,
   * PM0075 3.4 / RM0090 3.9.4). An operation still running (the host's erase) ends first. */
  uint32_t sr = wait_not_busy(sr_addr, bsy);
  if (sr & bsy) return PF_ERROR_TIMEOUT;
  REG(sr_addr) = errors | eop;
  if (p->style == PF_STYLE_F1) {
    /* PG alone among PG..STRT (bits 6:0): a page erase the host left selected must not
     * stay so. LOCK, OPTWRE and the interrupt enables are kept. */
    REG(cr_addr) = (REG(cr_addr) & ~0x7Fu) | F1_CR_PG;
  } else {
    /* PSIZE and PG in one write; nothing else of an erase the host set up may remain. */
    REG(cr_addr) = (REG(cr_addr) & ~(F4_CR_PSIZE | 0xFFu)) | cr_pg;
  }

  const uint32_t length = p->length;
  const uint32_t ring = p->ring;
  const uint32_t address = p->address;
  uint32_t done = p->read_offset;
  uint32_t last_written = p->write_offset;
  uint32_t idle = 0;
  uint32_t result = 0;
  while (done < length) {
    COMPILER_BARRIER();
    uint32_t written = p->write_offset;
    COMPILER_BARRIER();
    if (written != last_written) {
      last_written = written;
      idle = 0;
    }
    if (written > length) written = length;
    if (written < done + unit) {
      if (++idle > p->idle_loops) {
        result = PF_ERROR_STARVED;
        break;
      }
      continue;
    }
    /* Everything the host has put in the ring so far, one unit at a time. */
    while (done + unit <= written) {
      const uint32_t src = ring + (done & ring_mask);
      if (!unit_is_erased(src, unit)) {
        write_unit(address + done, src, unit);
        /* RM0385 3.3.6: on the F7 the flash sits behind the AXI bus, whose write buffer
         * may still hold the store; DSB makes sure it reached the controller before BSY
         * is polled. Harmless on the AHB parts. */
        DSB();
        sr = wait_not_busy(sr_addr, bsy);
        if (sr & bsy) {
          result = PF_ERROR_TIMEOUT;
          break;
        }
        if (sr & errors) {
          result = sr & errors;
          break;
        }
        /* PM0075 3.4: EOP is set after each program and cleared by writing 1. */
        if (sr & eop) REG(sr_addr) = eop;
      }
      done += unit;
      COMPILER_BARRIER();
      p->read_offset = done;
    }
    if (result != 0) break;
  }

  /* PM0075 2.3.3 / RM0090 3.6.4: PG off again, so that later stray writes to the flash do
   * not program it. (A write held back by BSY lands when the operation ends.) */
  REG(cr_addr) &= ~cr_pg;
  return result;
}

/* ------------------------------------------------------------------------------------- */
/* The BKPT all entries return to. A data label (no Thumb bit) so that its address is the
 * instruction's; the host sets LR to it | 1. `b .` keeps a resumed core from running off. */
__asm__(
    "  .pushsection .text.pf_loader_bkpt,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 1\n"
    "  .global pf_loader_bkpt\n"
    "  .type pf_loader_bkpt, %object\n"
    "pf_loader_bkpt:\n"
    "  bkpt #0\n"
    "  b .\n"
    "  .size pf_loader_bkpt, . - pf_loader_bkpt\n"
    "  .popsection\n");

extern const uint16_t pf_loader_bkpt[];
extern const uint8_t pf_loader_end[]; /* loader.ld */

/* Function addresses carry the Thumb bit (the linker sets it for Thumb functions). */
__attribute__((section(".pf_header"), used)) const struct pf_loader_header pf_loader_header = {
    .magic = PF_LOADER_MAGIC,
    .version = PF_LOADER_VERSION,
    .crc32 = (uint32_t)&pf_loader_crc32,
    .program = (uint32_t)&pf_loader_program,
    .bkpt = (uint32_t)pf_loader_bkpt,
    .end = (uint32_t)pf_loader_end,
    .crc32_ranges = (uint32_t)&pf_loader_crc32_ranges,
};
