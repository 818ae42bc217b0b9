/* edu-dma-guest: a bare-metal guest for QEMU's x86 pc machine (no BIOS, no OS) that finds
 * QEMU's edu device (1234:11e8, docs/specs/edu.rst) on PCI bus 0, gives its BAR0 an address,
 * and has the device DMA through the host's IOMMU mappings:
 *
 *   1. fills a source buffer in guest RAM with a pattern;
 *   2. DMA RAM -> the device's 4 KiB buffer (edu offset 0x40000);
 *   3. DMA the device's buffer -> a destination buffer in guest RAM that the guest never wrote;
 *   4. checks the destination holds the pattern byte for byte;
 *   5. the same into a second destination near the top of guest RAM (64 MiB).
 *
 * With the device passed through by vfio-pci, each transfer is a real DMA by the (emulated,
 * outer) edu device through the IOMMU, at guest-physical addresses = IOVAs of the IOAS the
 * iommufdd daemon mapped guest RAM into. One line per step goes to COM1; the verdict goes to
 * isa-debug-exit (iobase 0xf4): QEMU exits with status 33 (PASS) or 35 (FAIL).
 *
 * Built with gcc -m32 -ffreestanding (Makefile); runs as -bios edu-dma-guest.bin. */
#include <stdint.h>

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4
#define PASS 0x10   /* QEMU exits (0x10 << 1) | 1 = 33 */
#define FAIL 0x11   /* 35 */

#define EDU_VENDOR_DEVICE 0x11e81234u
#define EDU_BAR0 0xe0000000u   /* any free address in the PCI hole */
#define EDU_ID 0x00
#define EDU_INVERT 0x04
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUFFER 0x40000u
#define DMA_START 0x1u
#define DMA_TO_RAM 0x2u

#define SRC 0x00200000u        /* guest-physical = IOVA; below the edu's 28-bit DMA limit */
#define DST 0x00300000u
#define DST2 0x03f00000u      /* near the top of the guest's 64 MiB */
#define LEN 2048u              /* under 4 KiB: edu before QEMU 8 refuses a whole-buffer transfer */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc_(char c) { outb(COM1, (uint8_t)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(uint32_t v) {
    puts_("0x");
    for (int i = 28; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 0xf]);
}

static __attribute__((noreturn)) void finish(int ok, const char *why) {
    puts_(ok ? "edu-dma-guest: PASS\n" : "edu-dma-guest: FAIL: ");
    if (!ok) { puts_(why); putc_('\n'); }
    outb(DEBUG_EXIT, ok ? PASS : FAIL);
    for (;;) __asm__ volatile("cli; hlt");
}

static uint32_t pci_read(uint32_t dev, uint32_t reg) {
    outl(0xcf8, 0x80000000u | (dev << 11) | (reg & 0xfc));
    return inl(0xcfc);
}
static void pci_write(uint32_t dev, uint32_t reg, uint32_t v) {
    outl(0xcf8, 0x80000000u | (dev << 11) | (reg & 0xfc));
    outl(0xcfc, v);
}

static volatile uint32_t *reg32(uint32_t off) { return (volatile uint32_t *)(EDU_BAR0 + off); }
static void reg64_write(uint32_t off, uint32_t v) { reg32(off)[0] = v; reg32(off)[1] = 0; }

static int dma(uint32_t src, uint32_t dst, uint32_t count, uint32_t cmd) {
    reg64_write(EDU_DMA_SRC, src);
    reg64_write(EDU_DMA_DST, dst);
    reg64_write(EDU_DMA_COUNT, count);
    reg64_write(EDU_DMA_CMD, cmd | DMA_START);
    /* The engine runs from a timer (100 ms of virtual time on edu); nested TCG is slow. */
    for (uint32_t spin = 0; spin < 0x40000000u; spin++)
        if (!(*reg32(EDU_DMA_CMD) & DMA_START)) return 0;
    return -1;
}

void main(void) {
    volatile uint8_t *src = (volatile uint8_t *)SRC, *dst = (volatile uint8_t *)DST;
    uint32_t dev;

    puts_("edu-dma-guest: started\n");
    for (dev = 0; dev < 32; dev++)
        if (pci_read(dev, 0) == EDU_VENDOR_DEVICE) break;
    if (dev == 32) finish(0, "no edu device (1234:11e8) on PCI bus 0");
    puts_("edu-dma-guest: edu at PCI slot "); puthex(dev); putc_('\n');

    pci_write(dev, 0x10, EDU_BAR0);
    pci_write(dev, 0x04, pci_read(dev, 0x04) | 0x6);  /* memory space + bus master */
    uint32_t id = *reg32(EDU_ID);
    puts_("edu-dma-guest: BAR0 at "); puthex(EDU_BAR0); puts_(", id "); puthex(id); putc_('\n');
    if ((id & 0xff) != 0xed) finish(0, "BAR0 does not read as an edu device");
    *reg32(EDU_INVERT) = 0x12345678u;
    if (*reg32(EDU_INVERT) != ~0x12345678u) finish(0, "the edu liveness register does not invert");

    for (uint32_t i = 0; i < LEN; i++) {
        src[i] = (uint8_t)(i * 7 + 3);
        if (dst[i] != 0) finish(0, "the destination buffer is not zero before the DMA");
    }
    if (dma(SRC, EDU_BUFFER, LEN, 0)) finish(0, "DMA RAM -> device did not finish");
    puts_("edu-dma-guest: DMA guest RAM "); puthex(SRC); puts_(" -> device buffer done\n");
    if (dma(EDU_BUFFER, DST, LEN, DMA_TO_RAM)) finish(0, "DMA device -> RAM did not finish");
    puts_("edu-dma-guest: DMA device buffer -> guest RAM "); puthex(DST); puts_(" done\n");
    for (uint32_t i = 0; i < LEN; i++) {
        if (dst[i] != (uint8_t)(i * 7 + 3)) {
            puts_("edu-dma-guest: byte "); puthex(i); puts_(" is "); puthex(dst[i]); putc_('\n');
            finish(0, "the bytes the device wrote are not the pattern");
        }
    }
    if (dma(EDU_BUFFER, DST2, LEN, DMA_TO_RAM)) finish(0, "DMA device -> RAM (top) did not finish");
    for (uint32_t i = 0; i < LEN; i++)
        if (((volatile uint8_t *)DST2)[i] != (uint8_t)(i * 7 + 3)) finish(0, "the bytes at the top of RAM are not the pattern");
    puts_("edu-dma-guest: DMA device buffer -> guest RAM "); puthex(DST2); puts_(" done\n");
    puts_("edu-dma-guest: 2 x 2048 bytes landed and match\n");
    finish(1, "");
}
