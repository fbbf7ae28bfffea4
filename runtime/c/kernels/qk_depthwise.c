/* Depthwise convolution over NHWC int8. Channels are contiguous in NHWC, so the fast path
 * (multiplier 1) vectorizes across channels: each tap is one load of consecutive
 * channels. Inside windows run the row micro-kernels (qk_depthwise_row); a border window
 * runs the same channel loop over one pointer per tap, a tap in the padding pointing at
 * a row of the input zero point (what the folded bias expects it to read), so small
 * feature maps, where most windows touch the padding, stay on the SIMD path. Channel
 * multipliers above 1 take the per-element path. */
#include "qk_internal.h"

/* Taps of the fast path's offset table; larger kernels take the per-element path. */
#define QK_MAX_TAPS 64

/* The DSP and portable tap loops are unrolled where the tap count is a constant (the 3x3
 * instance below): the loop's own instructions cost as much as a tap's multiply-
 * accumulates. (Unrolled, the Helium loop ran slower: GCC 12 spilled its registers.) */
#if defined(__GNUC__)
#define QK_UNROLL_TAPS _Pragma("GCC unroll 9")
#else
#define QK_UNROLL_TAPS
#endif

/* Requantizes `count` consecutive channels from `acc` (channel o0 first). */
QK_INLINE void qk_requant_run(const int32_t *acc, int32_t count, int32_t o0,
                              const qanas_requant_t *rq, int8_t *out) {
  /* Locals, so that the int8 stores (which may alias anything) force no reloads. */
  const int32_t *const mult = rq->multiplier + o0, *const shift = rq->shift + o0;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  for (int32_t j = 0; j < count; ++j) {
    out[j] = (int8_t)qk_requantize(acc[j], mult[j], shift[j], zp, lo, hi);
  }
}

#if defined(QK_ISA_AVX2) || defined(QK_ISA_NEON)
/* Channels c .. channels - 1 of one output pixel one at a time (the SIMD blocks' rest):
 * tap t reads xs[t][c] and weight w[t * w_stride + c]. */
QK_INLINE void qk_dw_channels(const int8_t *const *xs, int32_t taps, const int8_t *w,
                              int32_t w_stride, int32_t c, int32_t channels,
                              const int32_t *bias, const qanas_requant_t *rq, int8_t *out) {
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < taps; ++t) {
      acc += xs[t][c] * w[t * w_stride + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}
#endif

#if defined(QK_ISA_MVE)
/* Helium: 8 channels per pass (below), a predicated 4-channel int32 pass for the rest
 * (MVE has no vector-by-vector integer VMLA: VMUL + VADD); requantized in vector
 * registers when every channel's shift is <= -2. */
QK_INLINE void qk_dw_store4(int32x4_t acc, const qanas_requant_t *rq, int32_t o, int32_t n,
                            int32_t vector_requant, int8_t *out) {
  const mve_pred16_t p = vctp32q((uint32_t)n);
  if (vector_requant) {
    const int32x4_t m = vldrwq_z_s32(rq->multiplier + o, p);
    const int32x4_t s = vldrwq_z_s32(rq->shift + o, p);
    vstrbq_p_s32(out + o, qk_mve_requantize(acc, m, s, rq->output_zero_point, rq->qmin,
                                             rq->qmax), p);
    return;
  }
  int32_t lanes[4];
  vstrwq_s32(lanes, acc);
  qk_requant_run(lanes, n < 4 ? n : 4, o, rq, out + o);
}

/* even/odd += the nine taps of an inside 3x3 window for 8 channels (int16 lanes): taps
 * at row_k + kx * col with row_0 = x, row_1 = x + row_a, row_2 = row_1 + row_b (one image
 * row apart in a tensor; anywhere in the fused inverted residual's ring of rows),
 * weights at w + t * channels. Written out: GCC 12 kept the accumulators on the stack and
 * read an offset table per tap (11 instructions a tap; here 8). */
QK_INLINE void qk_mve_dw3x3_taps(const int8_t *x, int32_t row_a, int32_t row_b, int32_t col,
                                 const int8_t *w, int32_t channels, int32x4_t *even,
                                 int32x4_t *odd) {
  int32x4_t e = *even, o = *odd;
  int16x8_t tx, tw;
  int32x4_t tp;
  const int8_t *xa;
#define QK_DW_TAP(ADDR)                     \
  "vldrb.s16 %q[tx], [" ADDR "]\n\t"       \
  "vldrb.s16 %q[tw], [%[w]]\n\t"            \
  "add %[w], %[w], %[ch]\n\t"               \
  "vmullb.s16 %q[tp], %q[tx], %q[tw]\n\t"   \
  "vadd.i32 %q[e], %q[e], %q[tp]\n\t"       \
  "vmullt.s16 %q[tp], %q[tx], %q[tw]\n\t"   \
  "vadd.i32 %q[o], %q[o], %q[tp]\n\t"
#define QK_DW_ROW                            \
  QK_DW_TAP("%[x]")                          \
  "add %[xa], %[x], %[col]\n\t"             \
  QK_DW_TAP("%[xa]")                         \
  "add %[xa], %[xa], %[col]\n\t"            \
  QK_DW_TAP("%[xa]")
  __asm__(QK_DW_ROW "add %[x], %[x], %[ra]\n\t" QK_DW_ROW "add %[x], %[x], %[rb]\n\t"
          QK_DW_ROW
          : [e] "+w"(e), [o] "+w"(o), [tx] "=&w"(tx), [tw] "=&w"(tw), [tp] "=&w"(tp),
            [x] "+r"(x), [w] "+r"(w), [xa] "=&r"(xa)
          : [ra] "r"(row_a), [rb] "r"(row_b), [col] "r"(col), [ch] "r"(channels)
          : "memory");
#undef QK_DW_ROW
#undef QK_DW_TAP
  *even = e, *odd = o;
}

/* One output pixel over `channels` channels: tap t reads xs[t][c] and weight
 * w[t * w_stride + c]. row_a != 0: an inside 3x3 window at xs[0], taps as in
 * qk_mve_dw3x3_taps (row_a, row_b: the increments from kernel row 0 to 1 and 1 to 2;
 * col_step between columns, w_stride == channels), xs then read only by the 4-channel
 * pass of the last channels % 8. */
QK_INLINE void qk_dw_pixel3(const int8_t *const *xs, int32_t taps, int32_t row_a,
                            int32_t row_b, int32_t col_step, const int8_t *w,
                            int32_t w_stride, int32_t channels, const int32_t *bias,
                            const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  int32_t c = 0;
  const int32_t all_taps = taps;
  const uint32x4_t even_bytes = vidupq_n_u32(0, 2); /* byte offsets 0, 2, 4, 6 */
  /* 8 channels per pass as int16 lanes: VMULLB/VMULLT give the exact int32 products of
   * the even and odd channels, accumulated in two vectors; VLD2 splits bias and
   * requantization constants the same way, VMOVNB/VMOVNT interleave the results back. */
  for (; c + 8 <= channels; c += 8) {
    const int32x4x2_t b = vld2q_s32(bias + c);
    int32x4_t even = b.val[0], odd = b.val[1];
    const int8_t *wt = w + c;
    if (row_a != 0) { /* an inside 3x3 window: the taps written out (below) */
      qk_mve_dw3x3_taps(xs[0] + c, row_a, row_b, col_step, wt, w_stride, &even, &odd);
      taps = 0;
    }
    for (int32_t t = 0; t < taps; ++t, wt += w_stride) {
      const int16x8_t vx = vldrbq_s16(xs[t] + c);
      const int16x8_t vw = vldrbq_s16(wt);
      even = vaddq_s32(even, vmullbq_int_s16(vx, vw));
      odd = vaddq_s32(odd, vmulltq_int_s16(vx, vw));
    }
    if (vector_requant) {
      const int32x4x2_t m = vld2q_s32(rq->multiplier + c);
      const int32x4x2_t sh = vld2q_s32(rq->shift + c);
      const int32x4_t qe = qk_mve_requantize(even, m.val[0], sh.val[0], rq->output_zero_point,
                                             rq->qmin, rq->qmax);
      const int32x4_t qo = qk_mve_requantize(odd, m.val[1], sh.val[1], rq->output_zero_point,
                                             rq->qmin, rq->qmax);
      /* even and odd channels straight to their bytes: two scatter stores */
      vstrbq_scatter_offset_s32(out + c, even_bytes, qe);
      vstrbq_scatter_offset_s32(out + c + 1, even_bytes, qo);
    } else {
      int32_t e[4], d[4];
      vstrwq_s32(e, even);
      vstrwq_s32(d, odd);
      const int32_t acc[8] = {e[0], d[0], e[1], d[1], e[2], d[2], e[3], d[3]};
      qk_requant_run(acc, 8, c, rq, out + c);
    }
  }
  taps = all_taps;
  for (; c < channels; c += 4) {
    const int32_t n = channels - c;
    const mve_pred16_t p = vctp32q((uint32_t)n);
    int32x4_t a = vldrwq_z_s32(bias + c, p);
    for (int32_t t = 0; t < taps; ++t) {
      a = vaddq_s32(a, vmulq_s32(vldrbq_z_s32(xs[t] + c, p),
                                 vldrbq_z_s32(w + t * w_stride + c, p)));
    }
    qk_dw_store4(a, rq, c, n, vector_requant, out);
  }
}

QK_INLINE void qk_dw_pixel(const int8_t *const *xs, int32_t taps, const int8_t *w,
                           int32_t w_stride, int32_t channels, const int32_t *bias,
                           const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  qk_dw_pixel3(xs, taps, 0, 0, 0, w, w_stride, channels, bias, rq, vector_requant, out);
}

#elif defined(QK_ISA_DSP)
/* `rounded` >> s (rounded half up) made even when the s dropped bits are zero: the tie
 * case of qk_dw_scale_narrow, out of line so that GCC keeps it off the common path (it
 * if-converted an inline test into six instructions a channel). */
static QK_NOINLINE int32_t qk_dw_round_tie(int32_t rounded, int32_t s) {
  const int32_t q = rounded >> s;
  return ((uint32_t)rounded & ((1u << s) - 1u)) == 0u ? q & ~1 : q;
}

/* qk_requantize's narrow case (shift <= -2) without zero point and clamp, in fewer
 * instructions: with s = -shift - 1 (1 .. 30) and the 64-bit product p = high 2^32 + low,
 * round_half_even(p / 2^(32 + s)) is round-half-up (high + 2^(s-1)) >> s, except at an
 * exact tie (low == 0 and the s dropped bits of high + 2^(s-1) zero), where it is that
 * rounded down to even. low == 0 is rare, so the tie test is off the common path. */
QK_INLINE int32_t qk_dw_scale_narrow(int32_t acc, int32_t multiplier, int32_t shift) {
  const int64_t product = (int64_t)acc * multiplier;
  const int32_t s = -shift - 1;
  const int32_t high = (int32_t)(product >> 32); /* |high| < 2^30: no overflow below */
  const int32_t rounded = high + (int32_t)((1u << s) >> 1);
  if (__builtin_expect((uint32_t)product == 0u, 0)) {
    return qk_dw_round_tie(rounded, s);
  }
  return rounded >> s;
}

/* A byte in all four bytes of a word (the SIMD clamp's bounds). */
QK_INLINE uint32_t qk_dw_splat4(int32_t v) {
  return (uint32_t)(uint8_t)v * 0x01010101u;
}

/* Requantizes channels c .. c + 3 from registers (through an array, GCC stored and
 * reloaded them) and stores them as one word. With every shift <= -2 (vector_requant)
 * the clamp and packing run on four bytes at once: SSAT to int8, PKHBT/UXTB16/ORR into
 * one word, SSUB8/SEL against the qmin and qmax splats lo4 and hi4 in every byte. */
QK_INLINE void qk_dw_store4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t c,
                            const qanas_requant_t *rq, int32_t vector_requant, uint32_t lo4,
                            uint32_t hi4, int8_t *out) {
  const int32_t *const m = rq->multiplier + c, *const sh = rq->shift + c;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (vector_requant) {
    int32_t q0 = qk_dw_scale_narrow(a0, m[0], sh[0]) + zp;
    int32_t q1 = qk_dw_scale_narrow(a1, m[1], sh[1]) + zp;
    int32_t q2 = qk_dw_scale_narrow(a2, m[2], sh[2]) + zp;
    int32_t q3 = qk_dw_scale_narrow(a3, m[3], sh[3]) + zp;
    int32_t ge;
    __asm__("ssat %[q0], #8, %[q0]\n\t"
            "ssat %[q1], #8, %[q1]\n\t"
            "ssat %[q2], #8, %[q2]\n\t"
            "ssat %[q3], #8, %[q3]\n\t"
            "pkhbt %[q0], %[q0], %[q2], lsl #16\n\t"
            "pkhbt %[q1], %[q1], %[q3], lsl #16\n\t"
            "uxtb16 %[q0], %[q0]\n\t"
            "uxtb16 %[q1], %[q1]\n\t"
            "orr %[q0], %[q0], %[q1], lsl #8\n\t"
            "ssub8 %[ge], %[q0], %[lo]\n\t"
            "sel %[q0], %[q0], %[lo]\n\t"
            "ssub8 %[ge], %[q0], %[hi]\n\t"
            "sel %[q0], %[hi], %[q0]"
            : [q0] "+r"(q0), [q1] "+r"(q1), [q2] "+r"(q2), [q3] "+r"(q3), [ge] "=&r"(ge)
            : [lo] "r"(lo4), [hi] "r"(hi4)
            : "cc");
    __builtin_memcpy(out + c, &q0, sizeof(q0));
    return;
  }
#else
  (void)vector_requant, (void)lo4, (void)hi4;
#endif
  const int32_t q0 = qk_requantize(a0, m[0], sh[0], zp, lo, hi);
  const int32_t q1 = qk_requantize(a1, m[1], sh[1], zp, lo, hi);
  const int32_t q2 = qk_requantize(a2, m[2], sh[2], zp, lo, hi);
  const int32_t q3 = qk_requantize(a3, m[3], sh[3], zp, lo, hi);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint32_t word = (uint32_t)(q0 & 0xff) | (uint32_t)(q1 & 0xff) << 8 |
                        (uint32_t)(q2 & 0xff) << 16 | (uint32_t)q3 << 24;
  __builtin_memcpy(out + c, &word, sizeof(word));
#else
  out[c] = (int8_t)q0, out[c + 1] = (int8_t)q1, out[c + 2] = (int8_t)q2;
  out[c + 3] = (int8_t)q3;
#endif
}

/* DSP extension: 4 channels per word; SXTB16 splits (c0 c1 c2 c3) into (c0, c2) and
 * (c1, c3), SMLABB/SMLATT multiply-accumulate the matching halfwords. Tap t reads
 * xs[t][c] and weight w[t * w_stride + c]. */
QK_INLINE void qk_dw_pixel(const int8_t *const *xs, int32_t taps, const int8_t *w,
                           int32_t w_stride, int32_t channels, const int32_t *bias,
                           const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  const uint32_t lo4 = qk_dw_splat4(rq->qmin), hi4 = qk_dw_splat4(rq->qmax);
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
    const int8_t *wt = w + c;
QK_UNROLL_TAPS
    for (int32_t t = 0; t < taps; ++t, wt += w_stride) {
      const int32_t xw = qk_read_word(xs[t] + c), ww = qk_read_word(wt);
      const int32_t xe = (int32_t)__sxtb16(xw), xo = qk_sxtb16_ror8(xw);
      const int32_t we = (int32_t)__sxtb16(ww), wo = qk_sxtb16_ror8(ww);
      a0 = __smlabb(xe, we, a0);
      a2 = __smlatt(xe, we, a2);
      a1 = __smlabb(xo, wo, a1);
      a3 = __smlatt(xo, wo, a3);
    }
    qk_dw_store4(a0, a1, a2, a3, c, rq, vector_requant, lo4, hi4, out);
  }
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < taps; ++t) {
      acc += xs[t][c] * w[t * w_stride + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}


/* a0 .. a3 += the nine taps of an inside 3x3 window for 4 channels: taps at row_k + kx
 * * col with row_0 = x, row_1 = x + row_a, row_2 = row_1 + row_b (byte offsets,
 * dilation included; equal in a tensor, anything in the fused inverted residual's ring of
 * rows), weights at w + t * channels. Written out: every address is a base register plus
 * a register offset (LSL #1 for the third column), 10 instructions a tap and 8 per
 * window to move the bases, where GCC 12 kept the nine tap pointers on the stack. The
 * row increments are read from memory: with them in registers, GCC (M7 flags) found no
 * allocation for the operands. */
QK_INLINE void qk_dsp_dw3x3_taps(const int8_t *x, int32_t row_a, int32_t row_b, int32_t col,
                                 const int8_t *w, int32_t channels, int32_t *a0, int32_t *a1,
                                 int32_t *a2, int32_t *a3) {
#if !QK_FULL_ASM
  for (int32_t ky = 0; ky < 3; ++ky, x += ky == 1 ? row_a : row_b) {
    for (int32_t kx = 0; kx < 3; ++kx) {
      const int8_t *xt = x + kx * col, *wt = w + (ky * 3 + kx) * channels;
      *a0 += xt[0] * wt[0];
      *a1 += xt[1] * wt[1];
      *a2 += xt[2] * wt[2];
      *a3 += xt[3] * wt[3];
    }
  }
#else
  int32_t xw, ww, xe, we;
#define QK_DW_TAP(XADDR, WADDR)                  \
  "ldr %[xw], " XADDR "\n\t"                    \
  "ldr %[ww], " WADDR "\n\t"                    \
  "sxtb16 %[xe], %[xw]\n\t"                     \
  "sxtb16 %[xw], %[xw], ror #8\n\t"             \
  "sxtb16 %[we], %[ww]\n\t"                     \
  "sxtb16 %[ww], %[ww], ror #8\n\t"             \
  "smlabb %[a0], %[xe], %[we], %[a0]\n\t"       \
  "smlatt %[a2], %[xe], %[we], %[a2]\n\t"       \
  "smlabb %[a1], %[xw], %[ww], %[a1]\n\t"       \
  "smlatt %[a3], %[xw], %[ww], %[a3]\n\t"
#define QK_DW_ROW                                          \
  QK_DW_TAP("[%[x]]", "[%[w]]")                            \
  QK_DW_TAP("[%[x], %[col]]", "[%[w], %[ch]]")             \
  QK_DW_TAP("[%[x], %[col], lsl #1]", "[%[w], %[ch], lsl #1]")
#define QK_DW_NEXT_W                        \
  "add %[w], %[w], %[ch], lsl #1\n\t"      \
  "add %[w], %[w], %[ch]\n\t"
  __asm__(QK_DW_ROW "ldr %[xe], %[ra]\n\t" "add %[x], %[x], %[xe]\n\t" QK_DW_NEXT_W
          QK_DW_ROW "ldr %[xe], %[rb]\n\t" "add %[x], %[x], %[xe]\n\t" QK_DW_NEXT_W
          QK_DW_ROW
          : [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [a3] "+r"(*a3),
            [xw] "=&r"(xw), [ww] "=&r"(ww), [xe] "=&r"(xe), [we] "=&r"(we), [x] "+r"(x),
            [w] "+r"(w)
          : [ra] "m"(row_a), [rb] "m"(row_b), [col] "r"(col), [ch] "r"(channels)
          : "memory");
#undef QK_DW_NEXT_W
#undef QK_DW_ROW
#undef QK_DW_TAP
#endif
}

/* An inside 3x3 window of a multiplier-1 depthwise conv (taps as in qk_dsp_dw3x3_taps),
 * 4 channels at a time, the last channels % 4 one by one. */
static QK_NOINLINE void qk_dw3x3_pixel(const int8_t *x, int32_t row_a, int32_t row_b,
                                       int32_t col, const int8_t *w, int32_t channels,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int32_t vector_requant, int8_t *out) {
  const uint32_t lo4 = qk_dw_splat4(rq->qmin), hi4 = qk_dw_splat4(rq->qmax);
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
    qk_dsp_dw3x3_taps(x + c, row_a, row_b, col, w + c, channels, &a0, &a1, &a2, &a3);
    qk_dw_store4(a0, a1, a2, a3, c, rq, vector_requant, lo4, hi4, out);
  }
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < 9; ++t) {
      const int32_t ky = t / 3, dy = ky == 0 ? 0 : ky == 1 ? row_a : row_a + row_b;
      acc += x[dy + (t % 3) * col + c] * w[t * channels + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}

#elif defined(QK_ISA_AVX2)
/* Bytes c .. c + 15 (wide) or c .. c + 7 of p as int16 lanes (VPMOVSXBW). */
QK_INLINE __m256i qk_avx2_dw_load(const int8_t *p, int32_t wide) {
  return _mm256_cvtepi8_epi16(wide ? _mm_loadu_si128((const __m128i *)(const void *)p)
                                   : _mm_loadl_epi64((const __m128i *)(const void *)p));
}

/* int32 values v[0 .. 3] and v[8 .. 11] (lo) or v[4 .. 7] and v[12 .. 15] (hi) as one
 * vector: the channel order of the accumulators below. 8 channels (!wide): v[0 .. 3] or
 * v[4 .. 7], upper half zero. */
QK_INLINE __m256i qk_avx2_dw_split(const int32_t *v, int32_t hi, int32_t wide) {
  const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(v + 4 * hi));
  const __m128i b = wide ? _mm_loadu_si128((const __m128i *)(const void *)(v + 8 + 4 * hi))
                         : _mm_setzero_si128();
  return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

/* 16 (wide) or 8 channels from c of one output pixel. Two taps share a VPMADDWD: their
 * int16 inputs and weights interleaved (VPUNPCKLWD/HWD), each int32 lane is one
 * channel's x_t w_t + x_t+1 w_t+1 (exact: int8 products fit in int16). The unpacks work
 * within 128-bit halves, so `lo` holds channels 0-3 and 8-11, `hi` 4-7 and 12-15; the
 * bias and requantization constants are split the same way and VPACKSSDW restores the
 * order. An odd tap count pairs the last tap with zeros. */
QK_INLINE void qk_avx2_dw_block(const int8_t *const *xs, int32_t taps, const int8_t *w,
                                 int32_t w_stride, int32_t c, const int32_t *bias,
                                 const qanas_requant_t *rq, int32_t vector_requant,
                                 int32_t wide, int8_t *out) {
  __m256i lo = qk_avx2_dw_split(bias + c, 0, wide), hi = qk_avx2_dw_split(bias + c, 1, wide);
  const int8_t *wt = w + c;
  int32_t t = 0;
QK_UNROLL_TAPS
  for (; t + 2 <= taps; t += 2, wt += 2 * w_stride) {
    const __m256i x0 = qk_avx2_dw_load(xs[t] + c, wide);
    const __m256i x1 = qk_avx2_dw_load(xs[t + 1] + c, wide);
    const __m256i w0 = qk_avx2_dw_load(wt, wide), w1 = qk_avx2_dw_load(wt + w_stride, wide);
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1),
                                                _mm256_unpacklo_epi16(w0, w1)));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1),
                                                _mm256_unpackhi_epi16(w0, w1)));
  }
  if (t < taps) {
    const __m256i x0 = qk_avx2_dw_load(xs[t] + c, wide), w0 = qk_avx2_dw_load(wt, wide);
    const __m256i zero = _mm256_setzero_si256();
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, zero),
                                                _mm256_unpacklo_epi16(w0, zero)));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, zero),
                                                _mm256_unpackhi_epi16(w0, zero)));
  }
  if (vector_requant) {
    const int32_t zp = rq->output_zero_point, qmin = rq->qmin, qmax = rq->qmax;
    const int32_t *m = rq->multiplier + c, *s = rq->shift + c;
    lo = qk_avx2_requantize(lo, qk_avx2_dw_split(m, 0, wide), qk_avx2_dw_split(s, 0, wide),
                            zp, qmin, qmax);
    hi = qk_avx2_requantize(hi, qk_avx2_dw_split(m, 1, wide), qk_avx2_dw_split(s, 1, wide),
                            zp, qmin, qmax);
    const __m256i q16 = _mm256_packs_epi32(lo, hi); /* channels 0-7 | 8-15 */
    const __m128i q8 = _mm_packs_epi16(_mm256_castsi256_si128(q16),
                                       _mm256_extracti128_si256(q16, 1));
    if (wide) {
      _mm_storeu_si128((__m128i *)(void *)(out + c), q8);
    } else {
      _mm_storel_epi64((__m128i *)(void *)(out + c), q8);
    }
    return;
  }
  int32_t acc[16];
  _mm256_storeu_si256((__m256i *)(void *)acc, _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256((__m256i *)(void *)(acc + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
  qk_requant_run(acc, wide ? 16 : 8, c, rq, out + c);
}

/* AVX2: blocks of 16 channels, one of 8, the last channels % 8 in scalar code. Tap t
 * reads xs[t][c] and weight w[t * w_stride + c]. */
QK_INLINE void qk_dw_pixel(const int8_t *const *xs, int32_t taps, const int8_t *w,
                           int32_t w_stride, int32_t channels, const int32_t *bias,
                           const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  int32_t c = 0;
  for (; c + 16 <= channels; c += 16) {
    qk_avx2_dw_block(xs, taps, w, w_stride, c, bias, rq, vector_requant, 1, out);
  }
  if (c + 8 <= channels) {
    qk_avx2_dw_block(xs, taps, w, w_stride, c, bias, rq, vector_requant, 0, out);
    c += 8;
  }
  qk_dw_channels(xs, taps, w, w_stride, c, channels, bias, rq, out);
}

#elif defined(QK_ISA_NEON)
/* acc[0 .. 3] += the exact int16 products p as int32 (SADDW, SADDW2), channels 4k ..
 * 4k + 7 being acc[k], acc[k + 1]. */
QK_INLINE void qk_neon_dw_add8(int32x4_t *acc, int16x8_t p) {
  acc[0] = vaddw_s16(acc[0], vget_low_s16(p));
  acc[1] = vaddw_high_s16(acc[1], p);
}

/* Requantizes `lanes` (4 to 16) channels from acc[0 .. lanes / 4 - 1] to out + c. */
QK_INLINE void qk_neon_dw_store(const int32x4_t *acc, int32_t lanes, int32_t c,
                                const qanas_requant_t *rq, int32_t vector_requant,
                                int8_t *out) {
  if (vector_requant) {
    const int32_t zp = rq->output_zero_point, qmin = rq->qmin, qmax = rq->qmax;
    int16x4_t q[4];
    for (int32_t k = 0; k < lanes / 4; ++k) {
      const int32x4_t m = vld1q_s32(rq->multiplier + c + 4 * k);
      const int32x4_t s = vld1q_s32(rq->shift + c + 4 * k);
      q[k] = vmovn_s32(qk_neon_requantize(acc[k], m, s, zp, qmin, qmax));
    }
    const int8x8_t b0 = vmovn_s16(vcombine_s16(q[0], q[1]));
    if (lanes == 16) {
      vst1q_s8(out + c, vcombine_s8(b0, vmovn_s16(vcombine_s16(q[2], q[3]))));
    } else {
      vst1_s8(out + c, b0);
    }
    return;
  }
  int32_t lane[16];
  for (int32_t k = 0; k < lanes / 4; ++k) {
    vst1q_s32(lane + 4 * k, acc[k]);
  }
  qk_requant_run(lane, lanes, c, rq, out + c);
}

/* NEON: 16 channels per pass (SMULL/SMULL2 give exact int16 products, SADDW/SADDW2
 * accumulate them in four int32 vectors), one pass of 8, the last channels % 8 in scalar
 * code. Tap t reads xs[t][c] and weight w[t * w_stride + c]. */
QK_INLINE void qk_dw_pixel(const int8_t *const *xs, int32_t taps, const int8_t *w,
                           int32_t w_stride, int32_t channels, const int32_t *bias,
                           const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  int32_t c = 0;
  for (; c + 16 <= channels; c += 16) {
    int32x4_t acc[4] = {vld1q_s32(bias + c), vld1q_s32(bias + c + 4),
                        vld1q_s32(bias + c + 8), vld1q_s32(bias + c + 12)};
    const int8_t *wt = w + c;
QK_UNROLL_TAPS
    for (int32_t t = 0; t < taps; ++t, wt += w_stride) {
      const int8x16_t x = vld1q_s8(xs[t] + c), wv = vld1q_s8(wt);
      qk_neon_dw_add8(acc, vmull_s8(vget_low_s8(x), vget_low_s8(wv)));
      qk_neon_dw_add8(acc + 2, vmull_high_s8(x, wv));
    }
    qk_neon_dw_store(acc, 16, c, rq, vector_requant, out);
  }
  if (c + 8 <= channels) {
    int32x4_t acc[2] = {vld1q_s32(bias + c), vld1q_s32(bias + c + 4)};
    for (int32_t t = 0; t < taps; ++t) {
      qk_neon_dw_add8(acc, vmull_s8(vld1_s8(xs[t] + c), vld1_s8(w + t * w_stride + c)));
    }
    qk_neon_dw_store(acc, 8, c, rq, vector_requant, out);
    c += 8;
  }
  qk_dw_channels(xs, taps, w, w_stride, c, channels, bias, rq, out);
}

#else
/* Portable: runs of 16 channels accumulated in an
 * array the compiler keeps in vector registers. */
QK_INLINE void qk_dw_pixel(const int8_t *const *xs, int32_t taps, const int8_t *w,
                           int32_t w_stride, int32_t channels, const int32_t *bias,
                           const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  (void)vector_requant;
  for (int32_t c = 0; c < channels; c += 16) {
    const int32_t n = channels - c < 16 ? channels - c : 16;
    int32_t acc[16];
    for (int32_t j = 0; j < n; ++j) {
      acc[j] = bias[c + j];
    }
    for (int32_t t = 0; t < taps; ++t) {
      const int8_t *xt = xs[t] + c;
      const int8_t *wt = w + t * w_stride + c;
      for (int32_t j = 0; j < n; ++j) {
        acc[j] += xt[j] * wt[j];
      }
    }
    qk_requant_run(acc, n, c, rq, out + c);
  }
}
#endif

/* The pixel micro-kernel out of line, for any tap count and (portable and host SIMD
 * paths) unrolled for 3x3: one copy each, shared by the border windows and the row
 * kernels. On the DSP and Helium only 3x3 border windows would take the unrolled copy
 * (inside ones have their own), which saved ~2 % of their instructions for 1.4 KB of M4
 * text: they take the loop. */
static QK_NOINLINE void qk_dw_pixel_any(const int8_t *const *xs, int32_t taps,
                                        const int8_t *w, int32_t w_stride, int32_t channels,
                                        const int32_t *bias, const qanas_requant_t *rq,
                                        int32_t vector_requant, int8_t *out) {
  qk_dw_pixel(xs, taps, w, w_stride, channels, bias, rq, vector_requant, out);
}

static void qk_dw_pixel_3x3(const int8_t *const *xs, const int8_t *w, int32_t w_stride,
                            int32_t channels, const int32_t *bias, const qanas_requant_t *rq,
                            int32_t vector_requant, int8_t *out) {
#if defined(QK_ISA_DSP) || defined(QK_ISA_MVE)
  qk_dw_pixel_any(xs, 9, w, w_stride, channels, bias, rq, vector_requant, out);
#else
  qk_dw_pixel(xs, 9, w, w_stride, channels, bias, rq, vector_requant, out);
#endif
}

/* Channels per pass of a border window: the length of the zero-point row its padding
 * taps read (on the stack). */
#define QK_DW_ZP_CHANNELS 256

/* The first and one-past-last kernel index k (0 .. kernel) whose input coordinate
 * origin + k * dilation lies in [0, size): the window's valid taps along one axis. */
static void qk_dw_valid_range(int32_t origin, int32_t dilation, int32_t kernel, int32_t size,
                              int32_t *first, int32_t *last) {
  int32_t lo = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
  int32_t hi = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
  lo = lo < kernel ? lo : kernel;
  hi = hi < kernel ? hi : kernel;
  *first = lo;
  *last = hi > lo ? hi : lo;
}

/* A window that touches the padding (multiplier 1): the pixel micro-kernel over one
 * pointer per tap, channels c0 .. c0 + n at a time; taps in the padding read `zp_row`
 * (the input zero point; the folded bias expects zero_point * w from them). Kernel rows
 * [ky0, ky1) and columns [kx0, kx1) are inside the input, from input pixel (y0, x0). */
static void qk_dw_border_pixel(const qanas_conv_params_t *c, const int8_t *input,
                               int32_t y0, int32_t x0, int32_t ky0, int32_t ky1, int32_t kx0,
                               int32_t kx1, const int8_t *zp_row, const int8_t *weights,
                               const int32_t *bias, const qanas_requant_t *rq,
                               int32_t vector_requant, int8_t *out) {
  const int8_t *xs[QK_MAX_TAPS];
  const int32_t taps = c->kernel_h * c->kernel_w;
  for (int32_t c0 = 0; c0 < c->in_c; c0 += QK_DW_ZP_CHANNELS) {
    const int32_t n = c->in_c - c0 < QK_DW_ZP_CHANNELS ? c->in_c - c0 : QK_DW_ZP_CHANNELS;
    for (int32_t t = 0; t < taps; ++t) {
      xs[t] = zp_row;
    }
    for (int32_t ky = ky0; ky < ky1; ++ky) {
      const int32_t iy = y0 + ky * c->dilation_h;
      for (int32_t kx = kx0; kx < kx1; ++kx) {
        const int32_t ix = x0 + kx * c->dilation_w;
        xs[ky * c->kernel_w + kx] = input + (iy * c->in_w + ix) * c->in_c + c0;
      }
    }
    qanas_requant_t part = *rq;
    part.multiplier += c0, part.shift += c0;
    if (taps == 9) {
      qk_dw_pixel_3x3(xs, weights + c0, c->in_c, n, bias + c0, &part, vector_requant,
                      out + c0);
    } else {
      qk_dw_pixel_any(xs, taps, weights + c0, c->in_c, n, bias + c0, &part,
                      vector_requant, out + c0);
    }
  }
}

/* One output element of any depthwise conv (multiplier > 1, big kernels): valid taps
 * only, the padding's zero_point * w added as one sum. */
static int32_t qk_dw_element(const qanas_conv_params_t *c, const int8_t *input,
                             const int8_t *weights, int32_t y0, int32_t x0, int32_t ky0,
                             int32_t ky1, int32_t kx0, int32_t kx1, int32_t o, int32_t acc) {
  const int32_t ch = o / c->depth_multiplier;
  int32_t padding = 0;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = y0 + ky * c->dilation_h;
    const int8_t *w = weights + ky * c->kernel_w * c->out_c + o;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t wv = w[kx * c->out_c];
      if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
        acc += wv * input[(iy * c->in_w + x0 + kx * c->dilation_w) * c->in_c + ch];
      } else {
        padding += wv;
      }
    }
  }
  return acc + padding * c->input_zero_point;
}

qanas_status_t qanas_depthwise_conv2d_s8(const qanas_conv_params_t *c, const int8_t *input,
                                         const int8_t *weights, const int32_t *bias,
                                         const qanas_requant_t *rq, int8_t *output) {
  if (c == 0 || input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 ||
      c->in_h <= 0 || c->in_w <= 0 || c->in_c <= 0 || c->out_h <= 0 || c->out_w <= 0 ||
      c->kernel_h <= 0 || c->kernel_w <= 0 || c->stride_h <= 0 || c->stride_w <= 0 ||
      c->dilation_h <= 0 || c->dilation_w <= 0 || c->pad_top < 0 || c->pad_left < 0 ||
      c->depth_multiplier <= 0 || c->out_c != c->in_c * c->depth_multiplier) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t taps = c->kernel_h * c->kernel_w;
  const int32_t fast = c->depth_multiplier == 1 && taps <= QK_MAX_TAPS;
  int8_t zp_row[QK_DW_ZP_CHANNELS];
  int32_t vector_requant = 0;
  if (fast) {
    const int32_t n = c->in_c < QK_DW_ZP_CHANNELS ? c->in_c : QK_DW_ZP_CHANNELS;
    for (int32_t i = 0; i < n; ++i) {
      zp_row[i] = (int8_t)c->input_zero_point;
    }
    vector_requant = qk_all_narrow_shifts(rq->shift, c->out_c);
  }
  const int32_t row_bytes = c->in_w * c->in_c;
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    const int32_t y0 = oy * c->stride_h - c->pad_top;
    int32_t ky0, ky1;
    qk_dw_valid_range(y0, c->dilation_h, c->kernel_h, c->in_h, &ky0, &ky1);
    const int32_t rows_inside = ky0 == 0 && ky1 == c->kernel_h;
    for (int32_t ox = 0; ox < c->out_w; ++ox) {
      int8_t *out = output + (oy * c->out_w + ox) * c->out_c;
      const int32_t x0 = ox * c->stride_w - c->pad_left;
      int32_t kx0, kx1;
      qk_dw_valid_range(x0, c->dilation_w, c->kernel_w, c->in_w, &kx0, &kx1);
      if (fast && rows_inside && kx0 == 0 && kx1 == c->kernel_w) {
        /* the run of inside windows from here: the row micro-kernels, rows one image
         * row apart */
        const int32_t reach = c->in_w - 1 - (c->kernel_w - 1) * c->dilation_w + c->pad_left;
        const int32_t last = reach / c->stride_w < c->out_w - 1 ? reach / c->stride_w
                                                                 : c->out_w - 1;
        const int8_t *rows[QK_MAX_TAPS];
        for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
          rows[ky] = input + (y0 + ky * c->dilation_h) * row_bytes + x0 * c->in_c;
        }
        qk_depthwise_row(rows, c->kernel_h, c->kernel_w, last - ox + 1, c->stride_w * c->in_c,
                         c->dilation_w * c->in_c, c->in_c, weights, bias, rq, vector_requant,
                         out);
        ox = last;
        continue;
      }
      if (fast) {
        qk_dw_border_pixel(c, input, y0, x0, ky0, ky1, kx0, kx1, zp_row, weights, bias, rq,
                           vector_requant, out);
        continue;
      }
      for (int32_t o = 0; o < c->out_c; ++o) {
        const int32_t acc = qk_dw_element(c, input, weights, y0, x0, ky0, ky1, kx0, kx1, o,
                                          bias[o]);
        out[o] = (int8_t)qk_requantize(acc, rq->multiplier[o], rq->shift[o],
                                       rq->output_zero_point, rq->qmin, rq->qmax);
      }
    }
  }
  return QANAS_OK;
}

void qk_depthwise_row(const int8_t *const *rows, int32_t kernel_h, int32_t kernel_w,
                      int32_t out_w, int32_t step, int32_t col, int32_t channels,
                      const int8_t *weights, const int32_t *bias, const qanas_requant_t *rq,
                      int32_t vector_requant, int8_t *out) {
  const int32_t taps = kernel_h * kernel_w;
  if (taps > QK_MAX_TAPS) { /* 9x9 and larger: per element (correct, not fast) */
    for (int32_t ox = 0; ox < out_w; ++ox, out += channels) {
      for (int32_t c = 0; c < channels; ++c) {
        int32_t acc = bias[c];
        for (int32_t t = 0; t < taps; ++t) {
          const int8_t *x = rows[t / kernel_w] + ox * step + (t % kernel_w) * col;
          acc += x[c] * weights[t * channels + c];
        }
        out[c] = (int8_t)qk_requantize(acc, rq->multiplier[c], rq->shift[c],
                                       rq->output_zero_point, rq->qmin, rq->qmax);
      }
    }
    return;
  }
  /* Tap offsets from kernel row 0's pointer: the rows may be anywhere in one buffer. */
  int32_t offsets[QK_MAX_TAPS];
  for (int32_t t = 0; t < taps; ++t) {
    offsets[t] = (int32_t)(rows[t / kernel_w] - rows[0]) + (t % kernel_w) * col;
  }
  const int32_t is3x3 = kernel_h == 3 && kernel_w == 3;
  const int8_t *xs[QK_MAX_TAPS];
  for (int32_t ox = 0; ox < out_w; ++ox, out += channels) {
    const int8_t *x = rows[0] + ox * step;
#if defined(QK_ISA_MVE) || defined(QK_ISA_DSP)
    if (is3x3) {
      const int32_t row_a = (int32_t)(rows[1] - rows[0]), row_b = (int32_t)(rows[2] - rows[1]);
#if defined(QK_ISA_MVE)
      xs[0] = x;
      for (int32_t t = 1; (channels & 7) != 0 && t < 9; ++t) { /* the 4-channel pass */
        xs[t] = x + offsets[t];
      }
      qk_dw_pixel3(xs, 9, row_a, row_b, col, weights, channels, channels, bias, rq,
                   vector_requant, out);
#else
      qk_dw3x3_pixel(x, row_a, row_b, col, weights, channels, bias, rq, vector_requant, out);
#endif
      continue;
    }
#endif
    for (int32_t t = 0; t < taps; ++t) {
      xs[t] = x + offsets[t];
    }
    if (is3x3) {
      qk_dw_pixel_3x3(xs, weights, channels, channels, bias, rq, vector_requant, out);
    } else {
      qk_dw_pixel_any(xs, taps, weights, channels, channels, bias, rq, vector_requant, out);
    }
  }
}
