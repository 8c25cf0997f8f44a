// Minimal Cortex-M startup: the vector table and Reset_Handler.
//
// The table holds only the 16 architectural entries (ARMv7-M ARM, DDI 0403E, B1.5.3): the
// demo enables no device interrupts, so no device vectors can be taken. The linker script
// places .isr_vector at the start of flash, 0x08000000, where the STM32 boots from with
// BOOT0 low (boot configuration: RM0008 3.4, RM0316 3.5, RM0090 2.4). The F7 boots from
// BOOT_ADD0, 0x0080 by default = 0x00200000, the ITCM alias of the same flash (RM0385 2.5,
// 3.4.1); the vectors still point at the AXIM addresses 0x0800xxxx, which is fine.
#include <stdint.h>

#include "demo.h"

// Defined by the linker script (demo_common.ld).
extern uint32_t __stack_top[];
extern const uint32_t __data_load[];
extern uint32_t __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __demo_state_start[], __demo_state_end[];

void Reset_Handler(void);
void Default_Handler(void);

// Faults and unexpected exceptions stop here, so a debugger that halts the core sees where
// it ended up (the exception number is in IPSR).
void Default_Handler(void) {
  for (;;) {
  }
}

#define DEMO_DEFAULT(name) void name(void) __attribute__((weak, alias("Default_Handler")))
DEMO_DEFAULT(NMI_Handler);
DEMO_DEFAULT(HardFault_Handler);
DEMO_DEFAULT(MemManage_Handler);
DEMO_DEFAULT(BusFault_Handler);
DEMO_DEFAULT(UsageFault_Handler);
DEMO_DEFAULT(SVC_Handler);
DEMO_DEFAULT(DebugMon_Handler);
DEMO_DEFAULT(PendSV_Handler);
DEMO_DEFAULT(SysTick_Handler);

typedef void (*Vector)(void);

__attribute__((section(".isr_vector"), used)) const Vector demo_vectors[16] = {
    (Vector)__stack_top,  // initial SP: end of the main SRAM
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};

static void fill_zero(uint32_t* p, const uint32_t* end) {
  while (p < end)
    *p++ = 0;
}

void Reset_Handler(void) {
  const uint32_t* src = __data_load;
  for (uint32_t* dst = __data_start; dst < __data_end;)
    *dst++ = *src++;
  fill_zero(__bss_start, __bss_end);
  fill_zero(__demo_state_start, __demo_state_end);
  main();
  for (;;) {
  }
}
