/*
 * version: the one place spectra's version is written, for spectrad, the
 * spectra CLI and what the node reports to clients.
 */
#ifndef SP_COMMON_VERSION_H
#define SP_COMMON_VERSION_H

#define SPECTRA_VERSION "0.1.0"
/* The Redis version spectra reports to clients that gate features on it
 * (INFO redis_version, HELLO's "version"). */
#define SPECTRA_REDIS_COMPAT_VERSION "7.0.0"

#endif
