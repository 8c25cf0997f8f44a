// demo_table[i] = fmix32((i + 1) * 0x9E3779B9), all arithmetic mod 2^32, where fmix32 is
// the MurmurHash3 finaliser. The preprocessor writes the 1536 entries as constant
// expressions, so there is no generator script and no generated file; a test can recompute
// any entry from this formula.
#include "demo.h"

#define DEMO_XS(h, n) ((uint32_t)(h) ^ ((uint32_t)(h) >> (n)))
#define DEMO_FMIX(h) \
  DEMO_XS((uint32_t)(DEMO_XS((uint32_t)(DEMO_XS(h, 16) * 0x85EBCA6Bu), 13) * 0xC2B2AE35u), 16)
#define DEMO_E(i) DEMO_FMIX((uint32_t)((i) + 1u) * 0x9E3779B9u)
#define DEMO_R4(i) DEMO_E(i), DEMO_E((i) + 1), DEMO_E((i) + 2), DEMO_E((i) + 3)
#define DEMO_R16(i) DEMO_R4(i), DEMO_R4((i) + 4), DEMO_R4((i) + 8), DEMO_R4((i) + 12)
#define DEMO_R64(i) DEMO_R16(i), DEMO_R16((i) + 16), DEMO_R16((i) + 32), DEMO_R16((i) + 48)
#define DEMO_R256(i) DEMO_R64(i), DEMO_R64((i) + 64), DEMO_R64((i) + 128), DEMO_R64((i) + 192)

const uint32_t demo_table[DEMO_TABLE_WORDS] = {
    DEMO_R256(0), DEMO_R256(256), DEMO_R256(512), DEMO_R256(768), DEMO_R256(1024), DEMO_R256(1280),
};

_Static_assert(sizeof demo_table == 6 * 1024, "demo_table must be 6 KiB");
