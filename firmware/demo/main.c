// The demo's visible behaviour, for tests that halt the core and read RAM:
//   demo_counter    (0x20002000) increments by one per iteration, forever;
//   demo_pattern[i] (0x20002004 + 4*i, i < 16) = 0xC0FFEE00 | ((counter + i) & 0xFF);
//   demo_table_word (0x20002044) = demo_table[counter % 1536].
// A halt can fall between the stores, so the pattern and the table word may still belong
// to the previous counter value. No interrupts, no WFI/WFE, no clock setup: the core runs
// on the reset clock. The only pin setup is the SWD-OFF board option (swd_pins.c).
#include "demo.h"

volatile uint32_t demo_counter __attribute__((section(".demo_state.counter")));
volatile uint32_t demo_pattern[DEMO_PATTERN_WORDS] __attribute__((section(".demo_state.pattern")));
volatile uint32_t demo_table_word __attribute__((section(".demo_state.table_word")));

int main(void) {
  demo_swd_pins();
  for (;;) {
    uint32_t n = demo_counter + 1u;
    demo_counter = n;
    for (uint32_t i = 0; i < DEMO_PATTERN_WORDS; ++i) {
      demo_pattern[i] = DEMO_PATTERN_TAG | ((n + i) & 0xFFu);
    }
    // Reading the table with a run-time index keeps all of it in the image.
    demo_table_word = demo_table[n % DEMO_TABLE_WORDS];
  }
}
