/*
 * fileio: small file helpers shared by the logs (src/store/wal.c,
 * src/engine/strong/raft_log.c). They do what they say and no more: no
 * buffering, no retries beyond EINTR.
 */
#ifndef SP_COMMON_FILEIO_H
#define SP_COMMON_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sp_write_all writes all n bytes of p to fd, retrying on EINTR and short
 * writes. Returns 0 or a negated errno (what was written stays written). */
int sp_write_all(int fd, const void *p, size_t n);

/* sp_read_whole reads the first size bytes of fd (pread from offset 0)
 * into a new buffer set in *out, owned by the caller (free()). Returns 0,
 * a negated errno, or SP_ERR_IO when the file is shorter than size. */
int sp_read_whole(int fd, uint64_t size, uint8_t **out);

/* sp_crc32 is zlib's CRC-32 of n bytes, for any n (zlib takes a uInt
 * length; larger inputs are fed in parts). */
uint32_t sp_crc32(const void *p, size_t n);

/* sp_parse_segment_name accepts exactly prefix, 16 lower-case hex digits
 * and suffix (a log segment's file name) and sets *id to the number. */
bool sp_parse_segment_name(const char *name, const char *prefix, const char *suffix, uint64_t *id);

#endif
