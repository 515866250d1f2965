/*
 * endian: integers in byte buffers. Little-endian for every on-disk and
 * on-wire format spectra writes (the store's WAL, the Raft log, peer
 * frames); big-endian where byte order must sort as numbers do (LMDB keys
 * such as the store's expiry index) and in the store's value headers.
 * Pure, header-only; callers check lengths before reading.
 */
#ifndef SP_COMMON_ENDIAN_H
#define SP_COMMON_ENDIAN_H

#include <stdint.h>

static inline void sp_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void sp_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t sp_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sp_get_le64(const uint8_t *p)
{
	return (uint64_t)sp_get_le32(p) | (uint64_t)sp_get_le32(p + 4) << 32;
}

static inline void sp_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint32_t sp_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t sp_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

#endif
