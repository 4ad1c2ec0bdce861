/*
 * A HotSpot disassembler plugin on Capstone, for reading what C2 makes of the Vector API kernels
 * (were the range checks hoisted? do the accumulators stay in registers?). The JDK ships none, and
 * Debian's libhsdis0-fcml speaks only the pre-JDK-13 interface. Diagnostic use only; not part of the build.
 *
 *   apt-get install libcapstone-dev
 *   gcc -O2 -shared -fPIC -o hsdis-amd64.so tools/hsdis/hsdis-capstone.c -lcapstone
 *   cp hsdis-amd64.so $JAVA_HOME/lib/
 *   java -XX:+UnlockDiagnosticVMOptions \
 *        -XX:CompileCommand=print,org.mmfuse.backend.FewQueryAttention::quadScores16 ...
 *
 * Capstone 4 (Debian 12) does not decode every EVEX instruction; those bytes print as ".byte" and the
 * decoding resumes at the next byte, so a line or two after them may be garbage.
 */
#include <capstone/capstone.h>
#include <stdint.h>

typedef void *(*event_callback)(void *stream, const char *event, void *arg);
typedef int (*printf_callback)(void *stream, const char *format, ...);

/* The entry point HotSpot looks up (src/utils/hsdis/hsdis.h in the JDK sources). */
void *decode_instructions_virtual(uintptr_t start_va, uintptr_t end_va, unsigned char *buffer, uintptr_t length,
        event_callback event, void *event_stream, printf_callback print, void *print_stream, const char *options,
        int newline) {
    (void) end_va;
    (void) options;
    csh handle;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK) return NULL;
    cs_insn *insn = cs_malloc(handle);
    const uint8_t *code = buffer;
    size_t left = length;
    uint64_t address = start_va;
    while (left > 0) {
        event(event_stream, "insn", (void *) (uintptr_t) address);
        if (cs_disasm_iter(handle, &code, &left, &address, insn)) {
            print(print_stream, "%-8s %s", insn->mnemonic, insn->op_str);
        } else { /* undecodable: one byte, then try again */
            print(print_stream, ".byte 0x%02x", *code);
            code++;
            left--;
            address++;
        }
        event(event_stream, "/insn", (void *) (uintptr_t) address);
        if (newline) print(print_stream, "\n");
    }
    cs_free(insn, 1);
    cs_close(&handle);
    return (void *) (start_va + length);
}
