/* Firmware harness for an emitted qanas model: the same model code as the host build,
 * run on a Cortex-M port (QEMU or a board).
 *
 * Inputs are const arrays generated into firmware_data.c (so they sit in flash and the
 * run needs no file system). Every run copies them into the model's input buffers
 * (untimed; model.h asks for a refill before each run), then times qanas_model_run with
 * the port's tick counter. Results are printed as the framed lines of
 * docs/serial-protocol.md, over semihosting or a UART:
 *   @QANAS BEGIN proto=1 ...            header (target, unit, tick_hz, repeats, warmup)
 *   @T <run> <ticks>                    one per timed run
 *   @L <kernel> <ticks>                 per kernel of the last run (-DQANAS_PROFILE_LAYERS)
 *   @O <output> <bytes> <crc32> <name>  then @D <output> <offset> <hex> lines
 *                                       (<name> percent-encoded: one word, ASCII)
 *   @S stack_peak=N stack_size=N arena=N
 *   @QANAS END status=QANAS_OK
 * A failure prints "@QANAS ERROR status=<code> where=<step>" instead of the rest.
 * With a semihosting console it runs once ("repeats=N warmup=W" from the command line)
 * and exits; with a UART it waits for PING / RUN commands.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "firmware_data.h"
#include "model.h"
#include "port.h"
#include "stack.h"

#ifndef QANAS_PREFIX
#define QANAS_PREFIX qanas_model
#define QANAS_PREFIX_UPPER QANAS_MODEL
#endif
#define QANAS_CAT2(a, b) a##b
#define QANAS_CAT(a, b) QANAS_CAT2(a, b)
#define QANAS_STR2(a) #a
#define QANAS_STR(a) QANAS_STR2(a)
#define MODEL(name) QANAS_CAT(QANAS_PREFIX, name)
#define MODEL_MACRO(name) QANAS_CAT(QANAS_PREFIX_UPPER, name)

#define kProtocolVersion 1
#define kDumpBytesPerLine 32u
#define kMaxRepeats 1000u
#define kCommandBytes 64u

static uint8_t g_arena[MODEL_MACRO(_ARENA_BYTES)] QANAS_ALIGNED(16);
static char g_line[160];
static size_t g_line_length = 0;

#if defined(QANAS_PROFILE_LAYERS)
static uint64_t g_kernel_start = 0;
static uint64_t g_kernel_ticks[MODEL_MACRO(_NUM_KERNELS)];

void qanas_profile_kernel_begin(unsigned index) {
  (void)index;
  g_kernel_start = qanas_port_ticks();
}

void qanas_profile_kernel_end(unsigned index) {
  if (index < (unsigned)MODEL_MACRO(_NUM_KERNELS)) {
    g_kernel_ticks[index] = qanas_port_ticks() - g_kernel_start;
  }
}
#endif

/* ---- line output without printf (no heap, no locale) ---- */
static void Flush(void) {
  if (g_line_length > 0) {
    qanas_port_write(g_line, g_line_length);
    g_line_length = 0;
  }
}

static void PutChar(char c) {
  if (g_line_length == sizeof(g_line)) {
    Flush();
  }
  g_line[g_line_length++] = c;
}

static void PutText(const char *text) {
  while (*text != '\0') {
    PutChar(*text++);
  }
}

/* Puts `text` as one protocol word: bytes outside '!'..'~', and '%', as %XX (upper-case
 * hex), so a name with spaces, newlines or non-ASCII cannot split or forge a frame. */
static void PutEscapedWord(const char *text) {
  static const char kHex[] = "0123456789ABCDEF";
  for (const unsigned char *s = (const unsigned char *)text; *s != '\0'; ++s) {
    if (*s > ' ' && *s <= '~' && *s != '%') {
      PutChar((char)*s);
    } else {
      PutChar('%');
      PutChar(kHex[*s >> 4]);
      PutChar(kHex[*s & 0xFu]);
    }
  }
}

static void PutUnsigned(uint64_t value) {
  char digits[20];
  size_t count = 0;
  do {
    digits[count++] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value != 0u);
  while (count > 0) {
    PutChar(digits[--count]);
  }
}

static void PutHexByte(uint8_t byte) {
  static const char kHex[] = "0123456789abcdef";
  PutChar(kHex[byte >> 4]);
  PutChar(kHex[byte & 0xFu]);
}

static void PutHex32(uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    PutHexByte((uint8_t)(value >> shift));
  }
}

static void EndLine(void) {
  PutChar('\n');
  Flush();
}

/* CRC-32 (IEEE 802.3, as zlib.crc32), bit by bit: no table in flash. */
static uint32_t Crc32(const uint8_t *data, size_t length) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < length; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
  }
  return ~crc;
}

static void ReportError(const char *status, const char *where) {
  PutText("@QANAS ERROR status=");
  PutText(status);
  PutText(" where=");
  PutText(where);
  EndLine();
}

static void ReportHello(void) {
  PutText("@QANAS HELLO proto=");
  PutUnsigned(kProtocolVersion);
  PutText(" target=" QANAS_FW_TARGET " model=" QANAS_STR(QANAS_PREFIX) " arena=");
  PutUnsigned(MODEL_MACRO(_ARENA_BYTES));
  PutText(" kernels=");
  PutUnsigned(MODEL_MACRO(_NUM_KERNELS));
  EndLine();
}

static void DumpOutput(size_t index) {
  const uint8_t *data = (const uint8_t *)MODEL(_output)(index);
  const size_t bytes = MODEL(_output_bytes)(index);
  PutText("@O ");
  PutUnsigned(index);
  PutChar(' ');
  PutUnsigned(bytes);
  PutChar(' ');
  PutHex32(Crc32(data, bytes));
  PutChar(' ');
  PutEscapedWord(MODEL(_output_name)(index));
  EndLine();
  for (size_t offset = 0; offset < bytes; offset += kDumpBytesPerLine) {
    PutText("@D ");
    PutUnsigned(index);
    PutChar(' ');
    PutUnsigned(offset);
    PutChar(' ');
    for (size_t i = offset; i < bytes && i < offset + kDumpBytesPerLine; ++i) {
      PutHexByte(data[i]);
    }
    EndLine();
  }
}

static void LoadInputs(void) {
  for (size_t i = 0; i < (size_t)MODEL_MACRO(_NUM_INPUTS); ++i) {
    memcpy(MODEL(_input)(i), qanas_fw_inputs[i], MODEL(_input_bytes)(i));
  }
}

/* One session: init, warm-up, timed runs, outputs, memory. Returns 0 on success. */
static int RunSession(uint32_t repeats, uint32_t warmup) {
  PutText("@QANAS BEGIN proto=");
  PutUnsigned(kProtocolVersion);
  PutText(" target=" QANAS_FW_TARGET " model=" QANAS_STR(QANAS_PREFIX) " unit=");
  PutText(qanas_port_tick_unit());
  PutText(" tick_hz=");
  PutUnsigned(qanas_port_tick_hz());
  PutText(" repeats=");
  PutUnsigned(repeats);
  PutText(" warmup=");
  PutUnsigned(warmup);
  EndLine();
  qanas_status_t status = MODEL(_init)(g_arena, sizeof(g_arena));
  if (status != QANAS_OK) {
    ReportError(qanas_status_name(status), "init");
    return 1;
  }
  for (size_t i = 0; i < (size_t)MODEL_MACRO(_NUM_INPUTS); ++i) {
    if (MODEL(_input_bytes)(i) != qanas_fw_input_bytes[i]) {
      ReportError("QANAS_ERROR_BAD_ARGUMENT", "input_size");
      return 1;
    }
  }
  for (uint32_t run = 0; run < warmup + repeats; ++run) {
    LoadInputs();
    const uint64_t start = qanas_port_ticks();
    status = MODEL(_run)();
    const uint64_t ticks = qanas_port_ticks() - start;
    if (status != QANAS_OK) {
      ReportError(qanas_status_name(status), "run");
      return 1;
    }
    if (run >= warmup) {
      PutText("@T ");
      PutUnsigned(run - warmup);
      PutChar(' ');
      PutUnsigned(ticks);
      EndLine();
    }
  }
#if defined(QANAS_PROFILE_LAYERS)
  for (size_t k = 0; k < (size_t)MODEL_MACRO(_NUM_KERNELS); ++k) {
    PutText("@L ");
    PutUnsigned(k);
    PutChar(' ');
    PutUnsigned(g_kernel_ticks[k]);
    EndLine();
  }
#endif
  for (size_t i = 0; i < (size_t)MODEL_MACRO(_NUM_OUTPUTS); ++i) {
    DumpOutput(i);
  }
  PutText("@S stack_peak=");
  PutUnsigned(qanas_stack_peak());
  PutText(" stack_size=");
  PutUnsigned(qanas_stack_size());
  PutText(" arena=");
  PutUnsigned(sizeof(g_arena));
  EndLine();
  PutText("@QANAS END status=QANAS_OK");
  EndLine();
  return 0;
}

/* The value of "key=<digits>" in `text`, or `fallback`. */
static uint32_t ParseOption(const char *text, const char *key, uint32_t fallback) {
  const size_t key_length = strlen(key);
  for (const char *p = text; *p != '\0'; ++p) {
    if ((p == text || p[-1] == ' ') && strncmp(p, key, key_length) == 0 &&
        p[key_length] == '=') {
      uint32_t value = 0;
      const char *digit = p + key_length + 1;
      if (*digit < '0' || *digit > '9') {
        return fallback;
      }
      while (*digit >= '0' && *digit <= '9' && value <= kMaxRepeats) {
        value = value * 10u + (uint32_t)(*digit++ - '0');
      }
      return value;
    }
  }
  return fallback;
}

static int ReadCommand(char *buffer, size_t bytes) {
  size_t length = 0;
  for (;;) {
    const int byte = qanas_port_read_byte();
    if (byte < 0) {
      return -1;
    }
    if (byte == '\n' || byte == '\r') {
      if (length == 0) {
        continue;
      }
      buffer[length] = '\0';
      return 0;
    }
    if (length + 1 < bytes) {
      buffer[length++] = (char)byte;
    }
  }
}

/* The defaults firmware_data.h sets, read at run time: the image (and its flash size) is
 * the same whatever the defaults, so `qanas deploy` and `qanas bench` report one size. */
static volatile const uint32_t kDefaultRepeats = QANAS_FW_REPEATS;
static volatile const uint32_t kDefaultWarmup = QANAS_FW_WARMUP;

int main(void) {
  qanas_port_init();
  if (!qanas_port_interactive()) {
    const char *line = qanas_port_command_line();
    const uint32_t repeats = ParseOption(line, "repeats", kDefaultRepeats);
    const uint32_t warmup = ParseOption(line, "warmup", kDefaultWarmup);
    if (repeats < 1u || repeats > kMaxRepeats || warmup > kMaxRepeats) {
      ReportError("QANAS_ERROR_BAD_ARGUMENT", "command_line");
      return 1;
    }
    return RunSession(repeats, warmup);
  }
  char command[kCommandBytes];
  ReportHello();
  for (;;) {
    if (ReadCommand(command, sizeof(command)) != 0) {
      return 1;
    }
    if (strcmp(command, "PING") == 0) {
      ReportHello();
    } else if (strncmp(command, "RUN", 3) == 0) {
      const uint32_t repeats = ParseOption(command, "repeats", kDefaultRepeats);
      const uint32_t warmup = ParseOption(command, "warmup", kDefaultWarmup);
      if (repeats < 1u || repeats > kMaxRepeats || warmup > kMaxRepeats) {
        ReportError("QANAS_ERROR_BAD_ARGUMENT", "command");
      } else {
        (void)RunSession(repeats, warmup);
      }
    } else {
      ReportError("QANAS_ERROR_BAD_ARGUMENT", "unknown_command");
    }
  }
}
