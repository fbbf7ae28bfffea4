/* Host harness for an emitted qanas model.
 *
 * Usage: host_main REPEATS OUT_DIR INPUT_0.bin [INPUT_1.bin ...]
 *
 * Reads each input file (raw little-endian tensor bytes, exactly the input's size) into
 * the model's input buffer before each of REPEATS runs, writes output i to
 * OUT_DIR/output_<i>.bin and prints one JSON object on stdout:
 *   {"status": "QANAS_OK", "arena_bytes": N, "repeats": R, "clock": "thread-cpu",
 *    "latency_s": [...], "outputs": [{"name": "...", "bytes": N, "file": "..."}]}
 * Each latency is the CPU time of the thread running the model (what the model costs,
 * not what other processes of a shared machine take from it); "clock" says "monotonic"
 * where the system has no per-thread CPU clock and wall time was measured instead.
 * On failure it prints {"status": "<code>", "error": "..."} and exits 1.
 * Every string is JSON-escaped and the report is pure ASCII: a name or path with quotes,
 * backslashes, control characters or non-ASCII (UTF-8, as \uXXXX) cannot break it.
 *
 * The model's symbol prefix comes from -DQANAS_PREFIX=name -DQANAS_PREFIX_UPPER=NAME
 * (the generated Makefile passes both). The arena is a static array: no heap.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "model.h"

#ifndef QANAS_PREFIX
#define QANAS_PREFIX qanas_model
#define QANAS_PREFIX_UPPER QANAS_MODEL
#endif

#define QANAS_CAT2(a, b) a##b
#define QANAS_CAT(a, b) QANAS_CAT2(a, b)
#define MODEL(name) QANAS_CAT(QANAS_PREFIX, name)
#define MODEL_MACRO(name) QANAS_CAT(QANAS_PREFIX_UPPER, name)

#define kMaxRepeats 1000

static uint8_t g_arena[MODEL_MACRO(_ARENA_BYTES) + 1] __attribute__((aligned(16)));
static double g_latency_s[kMaxRepeats];

/* The length of the UTF-8 sequence `lead` starts (0: not a lead byte) and its payload. */
static int Utf8Length(unsigned char lead, unsigned long *code) {
  if (lead >= 0xC2u && lead <= 0xDFu) {
    *code = lead & 0x1Fu;
    return 2;
  }
  if (lead >= 0xE0u && lead <= 0xEFu) {
    *code = lead & 0x0Fu;
    return 3;
  }
  if (lead >= 0xF0u && lead <= 0xF4u) {
    *code = lead & 0x07u;
    return 4;
  }
  return 0;
}

/* Decodes one UTF-8 character at `s`; returns its bytes, or 0 for an invalid sequence
 * (overlong, surrogate, beyond U+10FFFF or truncated). */
static int DecodeUtf8(const unsigned char *s, unsigned long *code) {
  static const unsigned long kMin[5] = {0, 0, 0x80u, 0x800u, 0x10000u};
  const int length = Utf8Length(s[0], code);
  for (int i = 1; i < length; ++i) {
    if ((s[i] & 0xC0u) != 0x80u) {
      return 0;
    }
    *code = (*code << 6) | (s[i] & 0x3Fu);
  }
  if (length == 0 || *code < kMin[length] || *code > 0x10FFFFu ||
      (*code >= 0xD800u && *code <= 0xDFFFu)) {
    return 0;
  }
  return length;
}

/* Prints the characters of `text` JSON-escaped (without quotes), ASCII only. Bytes that
 * are not valid UTF-8 print as U+FFFD. */
static void PrintJsonChars(const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  while (*s != '\0') {
    unsigned long code = *s;
    int length = 1;
    if (*s >= 0x80u) {
      length = DecodeUtf8(s, &code);
      if (length == 0) {
        code = 0xFFFDu;
        length = 1;
      }
    }
    if (code == '"' || code == '\\') {
      printf("\\%c", (int)code);
    } else if (code >= 0x20u && code < 0x7Fu) {
      putchar((int)code);
    } else if (code > 0xFFFFu) {
      code -= 0x10000u;
      printf("\\u%04lx\\u%04lx", 0xD800u + (code >> 10), 0xDC00u + (code & 0x3FFu));
    } else {
      printf("\\u%04lx", code);
    }
    s += length;
  }
}

/* Prints `text` as a JSON string, quotes included. */
static void PrintJsonString(const char *text) {
  putchar('"');
  PrintJsonChars(text);
  putchar('"');
}

static int Fail(const char *status, const char *message, const char *detail) {
  printf("{\"status\": ");
  PrintJsonString(status);
  printf(", \"error\": \"");
  PrintJsonChars(message);
  putchar(' ');
  PrintJsonChars(detail);
  printf("\"}\n");
  return 1;
}

#ifdef CLOCK_THREAD_CPUTIME_ID
#define kLatencyClock CLOCK_THREAD_CPUTIME_ID
#define kLatencyClockName "thread-cpu"
#else
#define kLatencyClock CLOCK_MONOTONIC
#define kLatencyClockName "monotonic"
#endif

static double NowSeconds(void) {
  struct timespec ts;
  clock_gettime(kLatencyClock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ReadExactly(const char *path, void *dst, size_t bytes) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    return 0;
  }
  size_t got = fread(dst, 1, bytes, file);
  int extra = fgetc(file);
  fclose(file);
  return got == bytes && extra == EOF;
}

static int WriteAll(const char *path, const void *src, size_t bytes) {
  FILE *file = fopen(path, "wb");
  if (file == NULL) {
    return 0;
  }
  size_t put = fwrite(src, 1, bytes, file);
  return (fclose(file) == 0) && put == bytes;
}

int main(int argc, char **argv) {
  const int num_inputs = (int)MODEL_MACRO(_NUM_INPUTS);
  if (argc != 3 + num_inputs) {
    fprintf(stderr, "usage: %s REPEATS OUT_DIR followed by %d input file(s)\n", argv[0],
            num_inputs);
    return 2;
  }
  int repeats = 0;
  for (const char *c = argv[1]; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9' || repeats > kMaxRepeats) {
      return Fail("QANAS_ERROR_BAD_ARGUMENT", "REPEATS must be an integer in 1..1000, got",
                  argv[1]);
    }
    repeats = repeats * 10 + (*c - '0');
  }
  if (repeats < 1 || repeats > kMaxRepeats) {
    return Fail("QANAS_ERROR_BAD_ARGUMENT", "REPEATS must be an integer in 1..1000, got",
                argv[1]);
  }
  qanas_status_t status = MODEL(_init)(g_arena, sizeof(g_arena));
  if (status != QANAS_OK) {
    return Fail(qanas_status_name(status), "init failed", "");
  }
  for (int r = 0; r < repeats; ++r) {
    /* Inputs are refilled before every run (untimed): once dead, their bytes in the arena
     * hold intermediates (model.h). */
    for (int i = 0; i < num_inputs; ++i) {
      if (!ReadExactly(argv[3 + i], MODEL(_input)((size_t)i),
                       MODEL(_input_bytes)((size_t)i))) {
        return Fail("QANAS_ERROR_BAD_ARGUMENT", "missing input file or wrong size:",
                    argv[3 + i]);
      }
    }
    const double start = NowSeconds();
    status = MODEL(_run)();
    g_latency_s[r] = NowSeconds() - start;
    if (status != QANAS_OK) {
      return Fail(qanas_status_name(status), "run failed", "");
    }
  }
  static char paths[MODEL_MACRO(_NUM_OUTPUTS)][1024];
  for (size_t i = 0; i < (size_t)MODEL_MACRO(_NUM_OUTPUTS); ++i) {
    const int n = snprintf(paths[i], sizeof(paths[i]), "%s/output_%lu.bin", argv[2],
                           (unsigned long)i);
    if (n < 0 || (size_t)n >= sizeof(paths[i]) ||
        !WriteAll(paths[i], MODEL(_output)(i), MODEL(_output_bytes)(i))) {
      return Fail("QANAS_ERROR_BAD_ARGUMENT", "cannot write outputs to", argv[2]);
    }
  }
  printf("{\"status\": \"QANAS_OK\", \"arena_bytes\": %lu, \"repeats\": %d, "
         "\"clock\": \"%s\", \"latency_s\": [",
         (unsigned long)MODEL_MACRO(_ARENA_BYTES), repeats, kLatencyClockName);
  for (int r = 0; r < repeats; ++r) {
    printf("%s%.9g", r ? ", " : "", g_latency_s[r]);
  }
  printf("], \"outputs\": [");
  for (size_t i = 0; i < (size_t)MODEL_MACRO(_NUM_OUTPUTS); ++i) {
    printf("%s{\"name\": ", i ? ", " : "");
    PrintJsonString(MODEL(_output_name)(i));
    printf(", \"bytes\": %lu, \"file\": ", (unsigned long)MODEL(_output_bytes)(i));
    PrintJsonString(paths[i]);
    putchar('}');
  }
  printf("]}\n");
  return 0;
}
