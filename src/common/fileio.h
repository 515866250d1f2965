/*
 * fileio: small file helpers shared by the logs (src/store/wal.c,
 * src/engine/strong/raft_log.c). They do what they say and no more: no
 * buffering, no retries beyond EINTR.
 */
#ifndef SP_COMMON_FILEIO_H
#define SP_COMMON_FILEIO_H

#include <stddef.h>

/* sp_write_all writes all n bytes of p to fd, retrying on EINTR and short
 * writes. Returns 0 or a negated errno (what was written stays written). */
int sp_write_all(int fd, const void *p, size_t n);

#endif
