// Shared declarations of the demo firmware. See firmware/README.md for the memory layout.
#ifndef PROBEFARM_FIRMWARE_DEMO_H
#define PROBEFARM_FIRMWARE_DEMO_H

#include <stdint.h>

// Fixed addresses that tests read without a symbol lookup. The linker script places the
// .demo_state section here and asserts that the symbols landed on these addresses.
#define DEMO_COUNTER_ADDR 0x20002000u
#define DEMO_PATTERN_ADDR 0x20002004u
#define DEMO_PATTERN_WORDS 16u
#define DEMO_PATTERN_TAG 0xC0FFEE00u

// 6 KiB of deterministic pseudo-random words in flash (table.c), so that the image spans
// several flash pages and a flashing test has real content to program and verify.
#define DEMO_TABLE_WORDS 1536u
extern const uint32_t demo_table[DEMO_TABLE_WORDS];

// Turns PA13/PA14 into GPIOs when the board's SWD-OFF jumper (PC13 low) is fitted.
void demo_swd_pins(void);

int main(void);

#endif
