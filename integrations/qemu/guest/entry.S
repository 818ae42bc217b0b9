/* edu-dma-guest: the reset path. QEMU maps the image (-bios, 64 KiB) at 0xffff0000 and
 * starts the CPU in real mode at 0xfffffff0. This switches to 32-bit protected mode with
 * flat segments and calls main() on a stack in guest RAM. No BIOS runs: the payload does
 * its own PCI setup (guest.c). */
    .set STACK_TOP, 0x00080000

    .section .text.start16, "ax"
    .code16
    .globl start16
start16:
    cli
    cld
    lgdtl %cs:(gdtr - start16)      /* start16 is the image's first byte (guest.ld) */
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $start32

    .code32
start32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $STACK_TOP, %esp
    call main
1:  hlt
    jmp 1b

    .align 8
gdt:
    .quad 0                     /* null */
    .quad 0x00cf9b000000ffff    /* 0x08: code, base 0, limit 4 GiB, 32-bit */
    .quad 0x00cf93000000ffff    /* 0x10: data, base 0, limit 4 GiB */
gdt_end:
gdtr:
    .word gdt_end - gdt - 1
    .long gdt

    /* The reset vector: the last 16 bytes of the image. */
    .section .reset, "ax"
    .code16
    .globl reset
reset:
    jmp start16
    .align 16, 0

    .section .note.GNU-stack, "", @progbits
