/* fileio: see fileio.h. */
#include "common/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"

int sp_write_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int sp_read_whole(int fd, uint64_t size, uint8_t **out)
{
	uint8_t *buf = sp_malloc(size ? size : 1);
	uint64_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? -errno : SP_ERR_IO;
			free(buf);
			return err;
		}
		got += (uint64_t)r;
	}
	*out = buf;
	return 0;
}

uint32_t sp_crc32(const void *p, size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	const unsigned char *b = p;
	while (n > 0) {
		uInt part = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = crc32(crc, b, part);
		b += part;
		n -= part;
	}
	return (uint32_t)crc;
}

bool sp_parse_segment_name(const char *name, const char *prefix, const char *suffix, uint64_t *id)
{
	size_t np = strlen(prefix), ns = strlen(suffix);
	if (strlen(name) != np + 16 + ns || memcmp(name, prefix, np) != 0 ||
	    strcmp(name + np + 16, suffix) != 0)
		return false;
	uint64_t v = 0;
	for (size_t i = np; i < np + 16; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*id = v;
	return true;
}
