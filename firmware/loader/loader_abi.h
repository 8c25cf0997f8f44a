/* The contract between the on-target flash loader (firmware/loader/) and the host side
 * (flash/loader.hpp, flash/programmer.cpp). Plain C so both sides include it.
 *
 * The loader is linked at PF_LOADER_BASE (every supported STM32 has SRAM there) and its
 * image starts with struct pf_loader_header. Entry points are Thumb functions called by
 * the debugger (protocol::CortexM algorithm runs): arguments in r0..r3, result in r0,
 * return to the BKPT at header.bkpt. */
#ifndef PROBEFARM_LOADER_ABI_H
#define PROBEFARM_LOADER_ABI_H

#include <stdint.h>

#define PF_LOADER_BASE 0x20000000u
#define PF_LOADER_MAGIC 0x444C4650u /* "PFLD" */
/* 2: header.crc32_ranges added (after `end`, so version-1 offsets are unchanged). */
#define PF_LOADER_VERSION 2u

/* Flash controller styles. */
#define PF_STYLE_F1 1u /* F1/F3: FLASH_CR.PG, half-word programming (PM0075, RM0316) */
#define PF_STYLE_F4 2u /* F2/F4/F7: FLASH_CR.PG + PSIZE (RM0090 3.6, RM0385 3.7) */

struct pf_loader_header {
  uint32_t magic;
  uint32_t version;
  uint32_t crc32;   /* uint32_t crc32(uint32_t address, uint32_t length, uint32_t crc_in) */
  uint32_t program; /* uint32_t program(struct pf_program *p) */
  uint32_t bkpt;    /* address of a `bkpt #0` the entry points return to */
  uint32_t end;     /* first free byte after the loader's code and data */
  /* uint32_t crc32_ranges(struct pf_crc_range *table, uint32_t count) (version 2) */
  uint32_t crc32_ranges;
};

/* CRC-32 as in IEEE 802.3 / zlib: reflected, polynomial 0xEDB88320, init and final XOR
 * 0xFFFFFFFF. crc32(a, n, 0) is zlib's crc32 of the n bytes at a; passing a previous
 * result as crc_in continues it. */

/* Many CRCs in one run: every algorithm run costs the host a dozen or more USB round trips
 * (core registers, resume, completion polls, result), far more than the CRC itself. The host
 * writes `count` entries to RAM, calls crc32_ranges(table, count) and reads the `crc` fields
 * back; the call returns 0, or PF_ERROR_ARGUMENT for an unknown flag (nothing computed).
 * Each entry's result is crc32(address, length, crc_in) with crc_in = the entry's `crc`, or
 * with PF_CRC_CHAIN the previous entry's result (a CRC over several ranges in order). */
#define PF_CRC_CHAIN 1u

struct pf_crc_range {
  uint32_t address;
  uint32_t length;
  uint32_t crc;   /* in: crc_in (ignored with PF_CRC_CHAIN); out: the result */
  uint32_t flags; /* PF_CRC_* */
};

/* Streaming program: the host fills a ring buffer in RAM while the loader programs from
 * it, so USB, SWD and flash programming overlap.
 *
 * The host writes `length` bytes destined for flash at `address` (both multiples of the
 * programming unit: 2 bytes for F1 style, 1 << psize for F4 style) into ring[], advancing
 * `write_offset` (a running byte count, not wrapped) after each chunk is in RAM. The loader
 * programs from ring[read_offset % ring_size], advancing `read_offset` (also a running
 * count) after each unit has been programmed and the controller reported no error.
 * Units whose content is all 0xFF are skipped (the flash is erased). ring_size is a power
 * of two and a multiple of 8.
 *
 * program() returns 0 when all `length` bytes are programmed, or the controller's error
 * bits (FLASH_SR masked to its error flags) with `read_offset` at the failing unit. It
 * never waits forever on the host: if write_offset does not move for ~`idle_loops`
 * iterations it returns PF_ERROR_STARVED. */
#define PF_ERROR_STARVED 0x80000000u
#define PF_ERROR_TIMEOUT 0x40000000u  /* BSY did not clear */
#define PF_ERROR_ARGUMENT 0x20000000u /* unknown style/psize, misaligned address/length/ring */

struct pf_program {
  uint32_t flash_regs;            /* FLASH interface register base (0x40022000 or 0x40023C00) */
  uint32_t style;                 /* PF_STYLE_* */
  uint32_t psize;                 /* F4 style: FLASH_CR.PSIZE (0=x8 1=x16 2=x32 3=x64) */
  uint32_t address;               /* flash destination of the first byte */
  uint32_t length;                /* bytes to program */
  uint32_t ring;                  /* RAM address of the ring buffer */
  uint32_t ring_size;             /* bytes, power of two */
  uint32_t idle_loops;            /* starvation bound */
  volatile uint32_t write_offset; /* host → loader */
  volatile uint32_t read_offset;  /* loader → host */
};

#endif
