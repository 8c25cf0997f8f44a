// The "SWD off" board option: with the board's SWD-OFF jumper fitted (PC13 pulled low,
// where Nucleo boards have their user button), the demo turns the SWD pins PA13 (SWDIO)
// and PA14 (SWCLK) into GPIOs as the first thing it does after reset. That is what
// firmware which reuses the debug pins does, and why a debugger can then reach the chip
// only by connecting under reset: nRST puts the pins back into their SWD function, and a
// debugger that halts the core at the reset vector keeps the firmware from running.
#include "demo.h"

#define REG(addr) (*(volatile uint32_t*)(addr))

#if defined(DEMO_FAMILY_F1)
// RM0008 7.3.7 RCC_APB2ENR: AFIOEN bit 0, IOPCEN bit 4. 9.2.2 GPIOx_IDR at +0x08.
// 9.4.2 AFIO_MAPR: SWJ_CFG[26:24] = 100 disables both JTAG-DP and SW-DP.
#define RCC_ENR 0x40021018u
#define RCC_ENR_BITS ((1u << 0) | (1u << 4))
#define GPIOC_IDR 0x40011008u
#define PIN_REG 0x40010004u
#define PIN_MASK (7u << 24)
#define PIN_VALUE (4u << 24)
#else
#if defined(DEMO_FAMILY_F3)
// RM0316 9.4.6 RCC_AHBENR: IOPAEN bit 17, IOPCEN bit 19. 11.4 GPIO registers.
#define RCC_ENR 0x40021014u
#define RCC_ENR_BITS ((1u << 17) | (1u << 19))
#define GPIOA_BASE 0x48000000u
#define GPIOC_BASE 0x48000800u
#else
// RM0090 7.3.10 / RM0385 5.3.10 RCC_AHB1ENR: GPIOAEN bit 0, GPIOCEN bit 2. RM0090 8.4 /
// RM0385 6.4 GPIO registers.
#define RCC_ENR 0x40023830u
#define RCC_ENR_BITS ((1u << 0) | (1u << 2))
#define GPIOA_BASE 0x40020000u
#define GPIOC_BASE 0x40020800u
#endif
// GPIOx_MODER at +0x00 (two bits per pin, 01 = general-purpose output, 10 = alternate
// function; PA13/PA14 reset to AF0 = SWDIO/SWCLK), GPIOx_IDR at +0x10.
#define GPIOC_IDR (GPIOC_BASE + 0x10u)
#define PIN_REG GPIOA_BASE
#define PIN_MASK ((3u << 26) | (3u << 28))
#define PIN_VALUE ((1u << 26) | (1u << 28))
#endif

void demo_swd_pins(void) {
  REG(RCC_ENR) |= RCC_ENR_BITS;
  if (REG(GPIOC_IDR) & (1u << 13)) return;  // jumper not fitted: PC13 pulled high
  REG(PIN_REG) = (REG(PIN_REG) & ~PIN_MASK) | PIN_VALUE;
}
