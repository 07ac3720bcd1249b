/*
 * toolstack — libxl's xenstore writes, waits and hotplug-script calls, replayed for the
 * shim (see toolstack.h). Counterpart: Xen 4.17 tools/libs/light/libxl_{create,device,
 * disk,nic,linux,domain}.c and tools/libs/util/libxlu_{disk_l.l,vif.c}.
 */
#include "frontend-shim/toolstack.h"

#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>

#include "xenbus/log.h"
#include "xenbus/xs.h"

extern char **environ;

#define WHO "toolstack"
/* DOMID_FIRST_RESERVED - 1 (xen.h): the last valid guest domid. */
#define TS_DOMID_MAX 0x7fefu
#define TS_TXN_TRIES 64u
#define TS_KV_MAX 40u
/* Longest device path we build: /local/domain/N/backend/qdisk/N/<10 digits>. */
#define TS_DEV_PATH 128u

/* ===================================================================== pure parsers */

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int copy_str(char *dst, size_t len, const char *src, size_t n)
{
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* Strict decimal 0..max; 0 or -EINVAL/-ERANGE. */
static int parse_dec(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	uint64_t v;
	int rc = xenbus_parse_u64(s, n, 0, max, &v);

	if (rc == 0)
		*out = (unsigned long)v;
	return rc;
}

/*
 * libxl's device_virtdisk_matches: <prefix><letters>[<partition>], letters read as a
 * bijective base-26 number (a=0, z=25, aa=26), partition without leading zeros.
 */
static bool virtdisk_matches(const char *v, const char *prefix, unsigned long max_index,
			     unsigned long max_part, unsigned long *index, unsigned long *part)
{
	size_t pl = strlen(prefix);
	const char *p;
	unsigned long idx = 0;
	bool any = false;

	if (strncmp(v, prefix, pl) != 0)
		return false;
	for (p = v + pl; *p >= 'a' && *p <= 'z'; p++) {
		idx = (any ? idx + 1 : 0) * 26 + (unsigned long)(*p - 'a');
		any = true;
		if (idx > max_index)
			return false;
	}
	if (!any)
		return false; /* libxl would yield disk -1 here; refuse instead */
	if (!*p) {
		*part = 0;
	} else {
		if (*p == '0' || parse_dec(p, strlen(p), max_part, part))
			return false;
	}
	*index = idx;
	return true;
}

int shim_vdev_to_devid(const char *vdev, unsigned int *devid)
{
	unsigned long disk, part;

	if (!vdev || !*vdev)
		return -EINVAL;

	/* d<disk>p<part>: the numeric xvd form. */
	if (vdev[0] == 'd' && isdigit((unsigned char)vdev[1])) {
		const char *p = strchr(vdev, 'p');

		if (p && !parse_dec(vdev + 1, (size_t)(p - vdev - 1), (1ul << 20) - 1, &disk) &&
		    !parse_dec(p + 1, strlen(p + 1), 255, &part))
			goto xvd;
		return -EINVAL;
	}
	if (virtdisk_matches(vdev, "xvd", (1ul << 20) - 1, 255, &disk, &part))
		goto xvd;

	/* A bare number is the devid (libxl: strtoul base 0, <= INT_MAX). */
	if (isdigit((unsigned char)vdev[0])) {
		char *end;
		unsigned long ul;

		errno = 0;
		ul = strtoul(vdev, &end, 0);
		if (errno || *end || ul > INT_MAX)
			return -EINVAL;
		*devid = (unsigned int)ul;
		return 0;
	}
	if (virtdisk_matches(vdev, "hd", 3, 63, &disk, &part)) {
		*devid = (unsigned int)(((disk < 2 ? 3u : 22u) << 8) | ((disk & 1) << 6) | part);
		return 0;
	}
	if (virtdisk_matches(vdev, "sd", 15, 15, &disk, &part)) {
		*devid = (unsigned int)((8u << 8) | (disk << 4) | part);
		return 0;
	}
	return -EINVAL;

xvd:
	if (disk <= 15 && part <= 15)
		*devid = (unsigned int)((202u << 8) | (disk << 4) | part);
	else
		*devid = (unsigned int)((1u << 28) | (disk << 8) | part);
	return 0;
}

int shim_mac_generate(uint8_t mac[6])
{
	uint8_t r[3];
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	mac[0] = 0x00;
	mac[1] = 0x16;
	mac[2] = 0x3e;
	mac[3] = r[0] & 0x7f;
	mac[4] = r[1];
	mac[5] = r[2];
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int shim_mac_parse(const char *s, uint8_t mac[6])
{
	uint8_t tmp[6];

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, tmp, 6);
	return 0;
}

void shim_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

static int disk_format_from(const char *s, enum shim_disk_format *f)
{
	static const struct {
		const char *name;
		enum shim_disk_format f;
	} tab[] = {
		{ "", SHIM_DISK_FORMAT_RAW },      { "raw", SHIM_DISK_FORMAT_RAW },
		{ "qcow", SHIM_DISK_FORMAT_QCOW }, { "qcow2", SHIM_DISK_FORMAT_QCOW2 },
		{ "vhd", SHIM_DISK_FORMAT_VHD },   { "empty", SHIM_DISK_FORMAT_EMPTY },
		{ "qed", SHIM_DISK_FORMAT_QED },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strcmp(s, tab[i].name) == 0) {
			/* DSET: respecifying a different value is an error */
			if (*f != SHIM_DISK_FORMAT_UNKNOWN && *f != tab[i].f)
				return -EINVAL;
			*f = tab[i].f;
			return 0;
		}
	}
	return -EINVAL;
}

static int disk_access_from(const char *s, bool *rw)
{
	if (!strcmp(s, "r") || !strcmp(s, "ro"))
		*rw = false;
	else if (!strcmp(s, "rw") || !strcmp(s, "w") || !strcmp(s, ""))
		*rw = true;
	else
		return -EINVAL;
	return 0;
}

/* savestring: a string may be set once (an empty one may be overwritten). */
static int save_once(char *dst, size_t len, const char *val)
{
	if (*dst)
		return -EINVAL;
	return copy_str(dst, len, val, strlen(val));
}

/* "<vdev>:<cdrom|disk>" positional (deprecated); 1 if it had the colon. */
static int vdev_and_devtype(struct shim_disk_spec *d, const char *tok)
{
	const char *colon = strrchr(tok, ':');
	int rc;

	if (!colon)
		return 0;
	if (*d->vdev)
		return -EINVAL;
	rc = copy_str(d->vdev, sizeof(d->vdev), tok, (size_t)(colon - tok));
	if (rc)
		return rc;
	if (!strcmp(colon + 1, "cdrom"))
		d->is_cdrom = true;
	else if (!strcmp(colon + 1, "disk"))
		d->is_cdrom = false;
	else
		return -EINVAL;
	return 1;
}

int shim_disk_spec_parse(const char *spec, struct shim_disk_spec *d, char *err,
			 size_t err_len)
{
	const char *p = spec;
	bool target_set = false, had_depr_prefix = false, access_set = false;
	char tok[SHIM_TS_STR_MAX + 32];
	int rc = 0;

	memset(d, 0, sizeof(*d));
	d->readwrite = true;
	d->discard = -1;
	d->trusted = -1;
	set_err(err, err_len, "ok");

	while (*p) {
		const char *end, *eq;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;

		/* target= eats the rest of the string (only a trailing comma is dropped). */
		if (!strncmp(p, "target=", 7)) {
			n = strlen(p + 7);
			if (n && p[7 + n - 1] == ',')
				n--;
			if (target_set && *d->target) {
				set_err(err, err_len, "target respecified");
				return -EINVAL;
			}
			rc = copy_str(d->target, sizeof(d->target), p + 7, n);
			if (rc)
				goto too_long;
			target_set = true;
			break;
		}

		/* Deprecated "<prefix>:" in front of a target. */
		{
			static const char *const fmts[] = { "raw:", "qcow:", "qcow2:", "vhd:" };
			static const char *const ignored[] = { "tapdisk:", "tap2:", "tap:", "aio:",
							       "ioemu:", "file:", "phy:" };
			bool matched = false;

			for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]) && !matched; i++) {
				size_t l = strlen(fmts[i]);

				if (!strncmp(p, fmts[i], l)) {
					char f[8];

					copy_str(f, sizeof(f), p, l - 1);
					if (disk_format_from(f, &d->format)) {
						set_err(err, err_len, "format respecified");
						return -EINVAL;
					}
					p += l;
					matched = true;
				}
			}
			for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]) && !matched;
			     i++) {
				size_t l = strlen(ignored[i]);

				if (!strncmp(p, ignored[i], l)) {
					p += l;
					matched = true;
				}
			}
			if (matched) {
				had_depr_prefix = true;
				continue;
			}
		}

		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		if (n >= sizeof(tok))
			goto too_long;
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n + (end ? 1 : 0);
		eq = strchr(tok, '=');

		if (eq) {
			const char *val = eq + 1;
			size_t kl = (size_t)(eq - tok);

#define KEY(k) (kl == strlen(k) && !strncmp(tok, k, kl))
			if (KEY("format")) {
				rc = disk_format_from(val, &d->format);
			} else if (KEY("devtype")) {
				if (!strcmp(val, "cdrom"))
					d->is_cdrom = true;
				else if (!strcmp(val, "disk"))
					d->is_cdrom = false;
				else
					rc = -EINVAL;
			} else if (KEY("access")) {
				rc = disk_access_from(val, &d->readwrite);
			} else if (KEY("backend")) {
				rc = save_once(d->backend, sizeof(d->backend), val);
			} else if (KEY("backendtype")) {
				enum shim_disk_backend b;

				if (!strcmp(val, "phy"))
					b = SHIM_DISK_BACKEND_PHY;
				else if (!strcmp(val, "qdisk"))
					b = SHIM_DISK_BACKEND_QDISK;
				else
					b = SHIM_DISK_BACKEND_UNKNOWN;
				if (b == SHIM_DISK_BACKEND_UNKNOWN ||
				    (d->backendtype != SHIM_DISK_BACKEND_UNKNOWN &&
				     d->backendtype != b))
					rc = -EINVAL;
				else
					d->backendtype = b;
			} else if (KEY("specification")) {
				rc = strcmp(val, "xen") ? -EINVAL : 0;
			} else if (KEY("vdev")) {
				rc = save_once(d->vdev, sizeof(d->vdev), val);
			} else if (KEY("script")) {
				rc = save_once(d->script, sizeof(d->script), val);
			} else {
				set_err(err, err_len, "unknown parameter near `%s'", tok);
				return -EINVAL;
			}
#undef KEY
			if (rc == -ENAMETOOLONG)
				goto too_long;
			if (rc) {
				set_err(err, err_len, "bad value or respecified near `%s'", tok);
				return -EINVAL;
			}
			continue;
		}

		/* Flags (matched before positional parameters, as in the flex rules). */
		if (!strcmp(tok, "cdrom")) {
			d->is_cdrom = true;
		} else if (!strcmp(tok, "direct-io-safe")) {
			d->direct_io_safe = true;
		} else if (!strcmp(tok, "discard")) {
			d->discard = 1;
		} else if (!strcmp(tok, "no-discard")) {
			d->discard = 0;
		} else if (!strcmp(tok, "trusted")) {
			d->trusted = 1;
		} else if (!strcmp(tok, "untrusted")) {
			d->trusted = 0;
		} else if (!target_set) {
			/* positional: target, [format], vdev, access */
			rc = copy_str(d->target, sizeof(d->target), tok, strlen(tok));
			if (rc)
				goto too_long;
			target_set = true;
		} else if (!had_depr_prefix && d->format == SHIM_DISK_FORMAT_UNKNOWN) {
			if (!*d->target && (rc = vdev_and_devtype(d, tok)) != 0) {
				if (rc < 0)
					goto bad_positional;
				d->format = SHIM_DISK_FORMAT_EMPTY;
			} else if (disk_format_from(tok, &d->format)) {
				goto bad_positional;
			}
		} else if (!*d->vdev) {
			rc = vdev_and_devtype(d, tok);
			if (rc < 0)
				goto bad_positional;
			if (rc == 0 && copy_str(d->vdev, sizeof(d->vdev), tok, strlen(tok)))
				goto too_long;
		} else if (!access_set) {
			access_set = true;
			if (disk_access_from(tok, &d->readwrite))
				goto bad_positional;
		} else {
			set_err(err, err_len, "too many positional parameters near `%s'", tok);
			return -EINVAL;
		}
	}

	if (d->format == SHIM_DISK_FORMAT_UNKNOWN)
		d->format = SHIM_DISK_FORMAT_RAW;
	if (d->is_cdrom) {
		d->removable = true;
		d->readwrite = false;
		if (!*d->target)
			d->format = SHIM_DISK_FORMAT_EMPTY;
	}
	if (!*d->vdev) {
		set_err(err, err_len, "no vdev specified");
		return -EINVAL;
	}
	if (!target_set && !d->removable) {
		set_err(err, err_len, "no target specified (and device not removable)");
		return -EINVAL;
	}
	return 0;

bad_positional:
	set_err(err, err_len, "bad positional parameter `%s'", tok);
	return -EINVAL;
too_long:
	set_err(err, err_len, "value too long");
	return -ENAMETOOLONG;
}

/* "^[0-9]+[GMK]?[Bb]/s$" */
static int rate_bytes_per_sec(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
		p++;
	}
	if (v == 0)
		return -ERANGE;
	if (*p == 'G')
		v *= 1000ull * 1000 * 1000, p++;
	else if (*p == 'M')
		v *= 1000ull * 1000, p++;
	else if (*p == 'K')
		v *= 1000ull, p++;
	if (*p == 'b')
		v /= 8;
	else if (*p != 'B')
		return -EINVAL;
	if (strcmp(p + 1, "/s") != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "^[0-9]+[mu]?s?$": no unit or "s" = seconds, "ms", "us". */
static int rate_interval_usecs(const char *s, uint32_t *out)
{
	const char *p = s;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
		p++;
	}
	if (v == 0)
		return -ERANGE;
	if (*p == '\0' || !strcmp(p, "s"))
		v *= 1000000ull;
	else if (!strcmp(p, "m") || !strcmp(p, "ms"))
		v *= 1000ull;
	else if (strcmp(p, "u") && strcmp(p, "us"))
		return -EINVAL;
	if (v > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

int shim_nic_rate_parse(const char *rate, uint64_t *bytes_per_interval,
			uint32_t *interval_usecs)
{
	char buf[64];
	char *at;
	uint64_t bps;
	uint32_t usecs = 50000; /* libxlu's default replenishment interval: 50 ms */
	int rc;

	if (copy_str(buf, sizeof(buf), rate, strlen(rate)))
		return -EINVAL;
	at = strchr(buf, '@');
	if (at)
		*at++ = '\0';
	if (!*buf)
		return -EINVAL;
	rc = rate_bytes_per_sec(buf, &bps);
	if (rc)
		return rc;
	if (at) {
		rc = rate_interval_usecs(at, &usecs);
		if (rc)
			return rc;
	}
	if (bps > UINT64_MAX / usecs)
		return -ERANGE;
	*bytes_per_interval = bps * usecs / 1000000u;
	*interval_usecs = usecs;
	return 0;
}

int shim_nic_spec_parse(const char *spec, struct shim_nic_spec *nic, char *err,
			size_t err_len)
{
	const char *p = spec;
	char tok[SHIM_TS_STR_MAX + 32];
	int rc = 0;

	memset(nic, 0, sizeof(*nic));
	nic->devid = -1;
	nic->trusted = -1;
	set_err(err, err_len, "ok");

	while (*p) {
		const char *end, *val;
		char *eq;
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		if (n >= sizeof(tok)) {
			set_err(err, err_len, "value too long");
			return -ENAMETOOLONG;
		}
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n + (end ? 1 : 0);
		if (!*tok)
			continue;

		if (!strcmp(tok, "trusted")) {
			nic->trusted = 1;
			continue;
		}
		if (!strcmp(tok, "untrusted")) {
			nic->trusted = 0;
			continue;
		}
		eq = strchr(tok, '=');
		if (!eq) {
			set_err(err, err_len, "expected key=value near `%s'", tok);
			return -EINVAL;
		}
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(tok, "mac")) {
			rc = shim_mac_parse(val, nic->mac);
			nic->mac_set = rc == 0;
		} else if (!strcmp(tok, "bridge")) {
			rc = copy_str(nic->bridge, sizeof(nic->bridge), val, strlen(val));
		} else if (!strcmp(tok, "ip")) {
			rc = copy_str(nic->ip, sizeof(nic->ip), val, strlen(val));
		} else if (!strcmp(tok, "script")) {
			rc = copy_str(nic->script, sizeof(nic->script), val, strlen(val));
		} else if (!strcmp(tok, "vifname")) {
			rc = copy_str(nic->vifname, sizeof(nic->vifname), val, strlen(val));
		} else if (!strcmp(tok, "gatewaydev")) {
			rc = copy_str(nic->gatewaydev, sizeof(nic->gatewaydev), val, strlen(val));
		} else if (!strcmp(tok, "backend")) {
			rc = copy_str(nic->backend, sizeof(nic->backend), val, strlen(val));
		} else if (!strcmp(tok, "rate")) {
			rc = shim_nic_rate_parse(val, &nic->rate_bytes_per_interval,
						 &nic->rate_interval_usecs);
		} else if (!strcmp(tok, "mtu")) {
			unsigned long v = 0;

			rc = parse_dec(val, strlen(val), 65535, &v);
			if (rc == 0 && v < 68)
				rc = -ERANGE;
			nic->mtu = (unsigned int)v;
		} else if (!strcmp(tok, "devid")) {
			unsigned long v = 0;

			rc = parse_dec(val, strlen(val), INT_MAX, &v);
			nic->devid = (int)v;
		} else if (!strcmp(tok, "type")) {
			/* PV guests only have "vif"; ioemu needs a device model we don't have */
			rc = strcmp(val, "vif") ? -EINVAL : 0;
		} else {
			set_err(err, err_len, "unknown or unsupported parameter `%s'", tok);
			return -EINVAL;
		}
		if (rc) {
			set_err(err, err_len, "bad value for %s: `%s'", tok, val);
			return rc;
		}
	}
	return 0;
}

/* ===================================================================== the toolstack */

struct shim_ts {
	struct xs_handle *xs;
	struct ev_loop *loop;
	struct xenbus_watcher watcher;
	char *script_dir;
	unsigned int init_ms, destroy_ms, hotplug_ms;
	unsigned int seq; /* watch token generation */
	/* The wait in progress (ts_wait), NULL outside one. */
	struct ts_waiter *waiters;
	size_t nr_waiters;
	size_t nr_pending;
};

/* A key/value list in write order; values are malloc'd. */
struct ts_kvs {
	size_t n;
	const char *key[TS_KV_MAX];
	char *val[TS_KV_MAX];
	int err;
};

static void kvs_add(struct ts_kvs *kv, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void kvs_add(struct ts_kvs *kv, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *v;

	if (kv->err)
		return;
	if (kv->n == TS_KV_MAX) {
		kv->err = -E2BIG;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&v, fmt, ap) < 0) {
		va_end(ap);
		kv->err = -ENOMEM;
		return;
	}
	va_end(ap);
	kv->key[kv->n] = key;
	kv->val[kv->n] = v;
	kv->n++;
}

static void kvs_free(struct ts_kvs *kv)
{
	for (size_t i = 0; i < kv->n; i++)
		free(kv->val[i]);
	kv->n = 0;
}

static int errno_or_eio(void)
{
	return errno ? -errno : -EIO;
}

static int xs_mkdir_t(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	errno = 0;
	return xs_mkdir(xs, t, path) ? 0 : errno_or_eio();
}

static int xs_setperms_t(struct xs_handle *xs, xs_transaction_t t, const char *path,
			 struct xs_permissions *perms, unsigned int n)
{
	errno = 0;
	return xs_set_permissions(xs, t, path, perms, n) ? 0 : errno_or_eio();
}

/* libxl__xs_mknod: write "" then set the permissions. */
static int mknod_t(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key,
		   struct xs_permissions *perms, unsigned int n)
{
	char path[XENBUS_PATH_MAX];
	int rc = xenbus_path(path, sizeof(path), dir, key);

	if (rc)
		return rc;
	rc = xenbus_write(xs, t, path, NULL, "");
	return rc ? rc : xs_setperms_t(xs, t, path, perms, n);
}

/* libxl__xs_writev[_perms]: each key in order, then (optionally) its permissions. */
static int writev_t(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const struct ts_kvs *kv, struct xs_permissions *perms, unsigned int n)
{
	for (size_t i = 0; i < kv->n; i++) {
		char path[XENBUS_PATH_MAX];
		int rc = xenbus_path(path, sizeof(path), dir, kv->key[i]);

		if (!rc)
			rc = xenbus_write(xs, t, path, NULL, kv->val[i]);
		if (!rc && perms)
			rc = xs_setperms_t(xs, t, path, perms, n);
		if (rc)
			return rc;
	}
	return 0;
}

/* 1 if path exists, 0 if not, -errno. */
static int exists_t(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	char *v;
	int rc = xenbus_read_str(xs, t, path, NULL, &v);

	if (rc == -ENOENT)
		return 0;
	if (rc == -E2BIG || rc == -EINVAL)
		return 1; /* present, just not text we'd read */
	if (rc)
		return rc;
	free(v);
	return 1;
}

/*
 * libxl__xs_path_cleanup (xenstore-rm -t): remove path, then each parent that has an
 * empty value and no children left.
 */
static int path_cleanup_t(struct xs_handle *xs, xs_transaction_t t, const char *user_path)
{
	char path[XENBUS_PATH_MAX];
	char *slash;
	int rc = copy_str(path, sizeof(path), user_path, strlen(user_path));

	if (rc)
		return rc;
	errno = 0;
	if (!xs_rm(xs, t, path))
		return errno == ENOENT ? 0 : errno_or_eio();
	while ((slash = strrchr(path, '/')) != NULL) {
		char *val, **dir;
		unsigned int nb = 0;

		*slash = '\0';
		if (!*path)
			break;
		if (xenbus_read_str(xs, t, path, NULL, &val))
			break;
		if (*val) {
			free(val);
			break;
		}
		free(val);
		dir = xs_directory(xs, t, path, &nb);
		free(dir);
		if (!dir || nb)
			break;
		errno = 0;
		if (!xs_rm(xs, t, path) && errno != ENOENT)
			return errno_or_eio();
	}
	return 0;
}

/* ---- configuration ---- */

static int env_ms(const char *name, unsigned int *out)
{
	const char *v = getenv(name);
	unsigned long ms;

	if (!v || !*v)
		return 0;
	if (parse_dec(v, strlen(v), 24ul * 3600 * 1000, &ms) || ms == 0) {
		log_err(WHO, "%s=%s: expected milliseconds > 0", name, v);
		return -EINVAL;
	}
	*out = (unsigned int)ms;
	return 0;
}

int shim_ts_config_from_env(struct shim_ts_config *cfg)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->init_timeout_ms = SHIM_TS_INIT_TIMEOUT_MS;
	cfg->destroy_timeout_ms = SHIM_TS_DESTROY_TIMEOUT_MS;
	cfg->hotplug_timeout_ms = SHIM_TS_HOTPLUG_TIMEOUT_MS;
	rc = env_ms(SHIM_TS_ENV_INIT_TIMEOUT, &cfg->init_timeout_ms);
	if (!rc)
		rc = env_ms(SHIM_TS_ENV_DESTROY_TIMEOUT, &cfg->destroy_timeout_ms);
	if (!rc)
		rc = env_ms(SHIM_TS_ENV_HOTPLUG_TIMEOUT, &cfg->hotplug_timeout_ms);
	cfg->script_dir = getenv(SHIM_TS_ENV_SCRIPT_DIR);
	return rc;
}

static void ts_watch_cb(struct xenbus_watcher *w, const char *path, const char *token);

int shim_ts_open(struct shim_ts **out, const struct shim_ts_config *cfg)
{
	struct shim_ts *ts;
	int rc;

	*out = NULL;
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	ts->init_ms = cfg->init_timeout_ms ? cfg->init_timeout_ms : SHIM_TS_INIT_TIMEOUT_MS;
	ts->destroy_ms =
		cfg->destroy_timeout_ms ? cfg->destroy_timeout_ms : SHIM_TS_DESTROY_TIMEOUT_MS;
	ts->hotplug_ms =
		cfg->hotplug_timeout_ms ? cfg->hotplug_timeout_ms : SHIM_TS_HOTPLUG_TIMEOUT_MS;
	ts->script_dir = strdup(cfg->script_dir ? cfg->script_dir : "/etc/xen/scripts");
	if (!ts->script_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	if (cfg->rundir) {
		char sock[PATH_MAX];

		if (snprintf(sock, sizeof(sock), "%s/socket", cfg->rundir) >= (int)sizeof(sock)) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		/* libxenstore only takes the path from the environment; hotplug scripts
		 * inherit it too (their xenstore-read/-write must reach the same store). */
		if (setenv("XENSTORED_PATH", sock, 1)) {
			rc = -errno;
			goto fail;
		}
	}
	errno = 0;
	ts->xs = xs_open(XS_UNWATCH_FILTER);
	if (!ts->xs) {
		rc = errno_or_eio();
		log_err(WHO, "cannot connect to xenstore (%s): %s",
			getenv("XENSTORED_PATH") ? getenv("XENSTORED_PATH") : "default",
			strerror(-rc));
		goto fail;
	}
	ts->loop = ev_loop_new(EVFLAG_AUTO);
	if (!ts->loop) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = xenbus_watcher_init(&ts->watcher, ts->loop, ts->xs, ts_watch_cb, ts);
	if (rc)
		goto fail;
	*out = ts;
	return 0;
fail:
	shim_ts_close(ts);
	return rc;
}

void shim_ts_close(struct shim_ts *ts)
{
	if (!ts)
		return;
	if (ts->loop) {
		xenbus_watcher_deinit(&ts->watcher);
		ev_loop_destroy(ts->loop);
	}
	if (ts->xs)
		xs_close(ts->xs);
	free(ts->script_dir);
	free(ts);
}

void shim_ts_timeouts(const struct shim_ts *ts, unsigned int *init_ms,
		      unsigned int *destroy_ms, unsigned int *hotplug_ms)
{
	*init_ms = ts->init_ms;
	*destroy_ms = ts->destroy_ms;
	*hotplug_ms = ts->hotplug_ms;
}

struct xs_handle *shim_ts_xs(struct shim_ts *ts)
{
	return ts->xs;
}

/* ---- waiting on xenstore (libxl__ev_devstate / libxl__xswait) ---- */

struct ts_waiter {
	char path[XENBUS_PATH_MAX];
	char token[32];
	int wanted; /* XenbusState wanted at path, or -1: wait for path to disappear */
	int rc;     /* 1 pending, 0 reached, -ENOENT state node removed, -ETIMEDOUT */
	bool watched;
};

static void ts_waiter_check(struct shim_ts *ts, struct ts_waiter *w)
{
	char *v;
	int rc;

	if (w->rc != 1)
		return;
	rc = xenbus_read_str(ts->xs, XBT_NULL, w->path, NULL, &v);
	if (w->wanted < 0) {
		if (rc == -ENOENT)
			w->rc = 0;
		else if (rc == 0)
			free(v);
	} else if (rc == -ENOENT) {
		/* libxl: "backend ... wanted state N but it was removed" -> error */
		w->rc = -ENOENT;
	} else if (rc == 0) {
		int got;

		/* libxl compares got == wanted and otherwise keeps waiting */
		if (xenbus_parse_state(v, strlen(v), &got) == 0 && got == w->wanted)
			w->rc = 0;
		free(v);
	}
	if (w->rc != 1) {
		ts->nr_pending--;
		if (!ts->nr_pending)
			ev_break(ts->loop, EVBREAK_ONE);
	}
}

static void ts_watch_cb(struct xenbus_watcher *xw, const char *path, const char *token)
{
	struct shim_ts *ts = xw->opaque;

	(void)path;
	for (size_t i = 0; i < ts->nr_waiters; i++)
		if (!strcmp(ts->waiters[i].token, token))
			ts_waiter_check(ts, &ts->waiters[i]);
}

static void ts_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/*
 * Wait, with one watch each and a single deadline, until every waiter is done. The
 * watch fires once at registration, so a state already reached counts. Pending
 * waiters get -ETIMEDOUT. 0 or -errno (setting up the watches failed).
 */
static int ts_wait(struct shim_ts *ts, struct ts_waiter *w, size_t n, unsigned int timeout_ms)
{
	ev_timer timer;
	int rc = 0;

	ts->waiters = w;
	ts->nr_waiters = n;
	ts->nr_pending = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(w[i].token, sizeof(w[i].token), "ts%u", ++ts->seq);
		w[i].rc = 1;
		w[i].watched = false;
		ts->nr_pending++;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		rc = xenbus_watch(&ts->watcher, w[i].path, w[i].token);
		w[i].watched = rc == 0;
	}
	if (!rc && ts->nr_pending) {
		ev_timer_init(&timer, ts_timeout_cb, timeout_ms / 1000.0, 0.);
		/* libev's clock is whatever it was when the loop last ran (maybe long
		 * ago, the toolstack idles between calls): refresh it, or the timeout
		 * fires early. */
		ev_now_update(ts->loop);
		ev_timer_start(ts->loop, &timer);
		ev_run(ts->loop, 0);
		ev_timer_stop(ts->loop, &timer);
	}
	for (size_t i = 0; i < n; i++) {
		if (w[i].watched)
			xenbus_unwatch(&ts->watcher, w[i].path, w[i].token);
		if (w[i].rc == 1)
			w[i].rc = -ETIMEDOUT;
	}
	ts->waiters = NULL;
	ts->nr_waiters = 0;
	return rc;
}

/* ---- hotplug scripts (libxl__async_exec with libxl_linux.c's argv/env) ---- */

static void ts_child_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)io;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/* Build environ + extra ("K=V" strings, overriding same-named entries). */
static char **build_env(char *const *extra)
{
	size_t ne = 0, nx = 0, k = 0;
	char **env;

	while (environ[ne])
		ne++;
	while (extra[nx])
		nx++;
	env = calloc(ne + nx + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < ne; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool overridden = false;

		for (size_t j = 0; j < nx && !overridden; j++)
			overridden = !strncmp(extra[j], environ[i], kl) && extra[j][kl] == '=';
		if (!overridden)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < nx; j++)
		env[k++] = extra[j];
	env[k] = NULL;
	return env;
}

/*
 * Run argv[0] with stdin=/dev/null, stdout->stderr, the given extra environment, and
 * a deadline (SIGKILL when it passes). *status gets the wait status. 0, -ETIMEDOUT,
 * or -errno (could not start it).
 */
static int ts_exec(struct shim_ts *ts, char *const argv[], char *const extra_env[],
		   unsigned int timeout_ms, int *status)
{
	char **env = build_env(extra_env);
	int nullfd = -1, pidfd = -1, rc = 0;
	pid_t pid;

	if (!env)
		return -ENOMEM;
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		rc = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls: libxenstore's reader thread exists. */
		if (dup2(nullfd, 0) < 0 || dup2(2, 1) < 0)
			_exit(127);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execve(argv[0], argv, env);
		_exit(127);
	}

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		ev_io io;
		ev_timer timer;

		ev_io_init(&io, ts_child_cb, pidfd, EV_READ);
		ev_timer_init(&timer, ts_timeout_cb, timeout_ms / 1000.0, 0.);
		ev_io_start(ts->loop, &io);
		/* libev's clock is whatever it was when the loop last ran (maybe long
		 * ago, the toolstack idles between calls): refresh it, or the timeout
		 * fires early. */
		ev_now_update(ts->loop);
		ev_timer_start(ts->loop, &timer);
		ev_run(ts->loop, 0);
		ev_io_stop(ts->loop, &io);
		ev_timer_stop(ts->loop, &timer);
		if (waitpid(pid, status, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			rc = -ETIMEDOUT;
		}
		close(pidfd);
	} else {
		/* No pidfd (old kernel): poll with a short sleep. */
		for (unsigned int waited = 0;; waited += 10) {
			pid_t r = waitpid(pid, status, WNOHANG);

			if (r == pid)
				break;
			if (waited >= timeout_ms) {
				kill(pid, SIGKILL);
				while (waitpid(pid, status, 0) < 0 && errno == EINTR)
					;
				rc = -ETIMEDOUT;
				break;
			}
			usleep(10000);
		}
	}
out:
	if (nullfd >= 0)
		close(nullfd);
	free(env);
	return rc;
}

/* ---- devices ---- */

/* One device, as libxl__device: paths derived from (kind, domid, devid, backend). */
struct ts_dev {
	unsigned int domid, devid, backend_domid;
	const char *kind;         /* frontend kind: "vbd" | "vif" */
	char backend_kind[16];    /* "vbd" | "qdisk" | "vif" */
	char fe[TS_DEV_PATH]; /* /local/domain/<d>/device/<kind>/<devid> */
	char be[TS_DEV_PATH]; /* /local/domain/<b>/backend/<bkind>/<d>/<devid> */
	char lx[TS_DEV_PATH]; /* /libxl/<d>/device/<kind>/<devid> */
};

static int dev_init(struct ts_dev *dev, unsigned int domid, const char *kind,
		    const char *backend_kind, unsigned int backend_domid, unsigned int devid)
{
	memset(dev, 0, sizeof(*dev));
	dev->domid = domid;
	dev->devid = devid;
	dev->backend_domid = backend_domid;
	dev->kind = kind;
	if (copy_str(dev->backend_kind, sizeof(dev->backend_kind), backend_kind,
		     strlen(backend_kind)))
		return -EINVAL;
	snprintf(dev->fe, sizeof(dev->fe), "/local/domain/%u/device/%s/%u", domid, kind, devid);
	snprintf(dev->be, sizeof(dev->be), "/local/domain/%u/backend/%s/%u/%u", backend_domid,
		 backend_kind, domid, devid);
	snprintf(dev->lx, sizeof(dev->lx), "/libxl/%u/device/%s/%u", domid, kind, devid);
	return 0;
}

/* Does the toolstack run this device's hotplug script? (vbd and vif only, and only
 * when the backend is in our own domain; driver domains run theirs via xl devd.) */
static bool dev_has_script(const struct ts_dev *dev)
{
	return dev->backend_domid == 0 &&
	       (!strcmp(dev->backend_kind, "vbd") || !strcmp(dev->backend_kind, "vif"));
}

static int domain_check(struct shim_ts *ts, unsigned int domid)
{
	char path[64];
	int rc;

	if (domid == 0 || domid > TS_DOMID_MAX)
		return -EINVAL;
	snprintf(path, sizeof(path), "/local/domain/%u", domid);
	rc = exists_t(ts->xs, XBT_NULL, path);
	if (rc < 0)
		return rc;
	if (!rc) {
		log_err(WHO, "domain %u does not exist (no %s)", domid, path);
		return -ENOENT;
	}
	return 0;
}

/* "backend=" -> domid: a number, or a domain name looked up under /local/domain. */
static int resolve_domid(struct shim_ts *ts, const char *name, unsigned int *domid)
{
	unsigned long v;
	char **dir;
	unsigned int n = 0;
	int rc = -ENOENT;

	if (!*name) {
		*domid = 0;
		return 0;
	}
	if (parse_dec(name, strlen(name), TS_DOMID_MAX, &v) == 0) {
		*domid = (unsigned int)v;
		return 0;
	}
	if (!strcmp(name, "Domain-0")) {
		*domid = 0;
		return 0;
	}
	dir = xs_directory(ts->xs, XBT_NULL, "/local/domain", &n);
	for (unsigned int i = 0; dir && i < n && rc; i++) {
		char p[64], *nm;

		snprintf(p, sizeof(p), "/local/domain/%s", dir[i]);
		if (xenbus_read_str(ts->xs, XBT_NULL, p, "name", &nm) == 0) {
			if (!strcmp(nm, name) &&
			    parse_dec(dir[i], strlen(dir[i]), TS_DOMID_MAX, &v) == 0) {
				*domid = (unsigned int)v;
				rc = 0;
			}
			free(nm);
		}
	}
	free(dir);
	if (rc)
		log_err(WHO, "backend domain `%s' not found", name);
	return rc;
}

static const char *abs_script(struct shim_ts *ts, const char *script, char *buf, size_t len)
{
	if (script[0] == '/')
		return script;
	snprintf(buf, len, "%s/%s", ts->script_dir, script);
	return buf;
}

/* What libxl__device_generic_add writes, in its order, inside transaction t. */
struct generic_add {
	const struct ts_dev *dev;
	const struct ts_kvs *back, *front, *ro_front;
};

static int generic_add_t(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	const struct generic_add *ga = arg;
	const struct ts_dev *dev = ga->dev;
	struct xs_permissions fe_perms[2] = {
		{ .id = dev->domid, .perms = XS_PERM_NONE },
		{ .id = dev->backend_domid, .perms = XS_PERM_READ },
	};
	struct xs_permissions be_perms[2] = {
		{ .id = dev->backend_domid, .perms = XS_PERM_NONE },
		{ .id = dev->domid, .perms = XS_PERM_READ },
	};
	int rc;

	/* libxl__device_exists: the /libxl copy says whether the device is there. */
	rc = exists_t(xs, t, dev->lx);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		log_err(WHO, "device already exists in xenstore (%s)", dev->lx);
		return -EEXIST;
	}

	rc = xenbus_rm(xs, t, dev->lx, NULL);
	if (!rc)
		rc = xenbus_write(xs, t, dev->lx, "frontend", dev->fe);
	if (!rc)
		rc = xenbus_write(xs, t, dev->lx, "backend", dev->be);
	if (rc)
		return rc;

	/* frontend: rm, mkdir, perms n<fe>,r<be>, backend pointer, then the keys with
	 * the same perms each (read-only keys: n<be>,r<fe>) */
	rc = xenbus_rm(xs, t, dev->fe, NULL);
	if (!rc)
		rc = xs_mkdir_t(xs, t, dev->fe);
	if (!rc)
		rc = xs_setperms_t(xs, t, dev->fe, fe_perms, 2);
	if (!rc)
		rc = xenbus_write(xs, t, dev->fe, "backend", dev->be);
	if (!rc)
		rc = writev_t(xs, t, dev->fe, ga->front, fe_perms, 2);
	if (!rc && ga->ro_front)
		rc = writev_t(xs, t, dev->fe, ga->ro_front, be_perms, 2);
	if (rc)
		return rc;

	/* backend: rm, mkdir, perms n<be>,r<fe>, frontend pointer, keys (inherit perms) */
	rc = xenbus_rm(xs, t, dev->be, NULL);
	if (!rc)
		rc = xs_mkdir_t(xs, t, dev->be);
	if (!rc)
		rc = xs_setperms_t(xs, t, dev->be, be_perms, 2);
	if (!rc)
		rc = xenbus_write(xs, t, dev->be, "frontend", dev->fe);
	if (!rc)
		rc = writev_t(xs, t, dev->be, ga->back, NULL, 0);
	/* and a copy of the backend keys under /libxl, so nothing trusts the backend */
	if (!rc)
		rc = writev_t(xs, t, dev->lx, ga->back, NULL, 0);
	return rc;
}

/* libxl__device_destroy: frontend, /libxl and backend paths, cleaned up to empty parents. */
static int device_destroy_t(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	const struct ts_dev *dev = arg;
	int rc = path_cleanup_t(xs, t, dev->fe);

	if (!rc)
		rc = path_cleanup_t(xs, t, dev->lx);
	if (!rc)
		rc = path_cleanup_t(xs, t, dev->be);
	return rc;
}

static int device_destroy(struct shim_ts *ts, const struct ts_dev *dev)
{
	int rc = xenbus_transaction(ts->xs, device_destroy_t, (void *)dev, TS_TXN_TRIES);

	if (rc)
		log_err(WHO, "removing %s nodes: %s", dev->be, strerror(-rc));
	return rc;
}

/* Start of libxl__initiate_device_generic_remove, inside transaction t. */
struct remove_start {
	const struct ts_dev *dev;
	bool force;
	bool backend_gone; /* out: no backend state node: only clean up */
};

static int remove_start_t(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct remove_start *rs = arg;
	int state = -1, rc;
	char *v;

	rs->backend_gone = false;
	if (rs->force) {
		/* forced: the frontend goes first, so a dead guest can't hold us up */
		rc = path_cleanup_t(xs, t, rs->dev->fe);
		if (rc)
			return rc;
	}
	rc = xenbus_read_str(xs, t, rs->dev->be, "state", &v);
	if (rc == -ENOENT) {
		rs->backend_gone = true;
		return 0;
	}
	if (rc)
		return rc;
	if (xenbus_parse_state(v, strlen(v), &state))
		state = -1;
	free(v);
	rc = xenbus_write(xs, t, rs->dev->be, "online", "0");
	/* a backend already Closed is left alone */
	if (!rc && state != XenbusStateClosed)
		rc = xenbus_printf(xs, t, rs->dev->be, "state", "%d", XenbusStateClosing);
	return rc;
}

/* Read <be>/script (libxl reads it back from xenstore, not from its config). */
static int dev_script(struct shim_ts *ts, const struct ts_dev *dev, char **script)
{
	int rc = xenbus_read_str(ts->xs, XBT_NULL, dev->be, "script", script);

	if (rc)
		log_err(WHO, "unable to read script from %s: %s", dev->be, strerror(-rc));
	return rc;
}

/*
 * device_hotplug: run the device's script for action (true = add/online,
 * false = remove/offline). 0 (or no script to run), -ETIMEDOUT, -EIO (non-zero exit),
 * -errno.
 */
static int run_hotplug(struct shim_ts *ts, const struct ts_dev *dev, bool add)
{
	char *script = NULL, *gatewaydev = NULL;
	char e_script[PATH_MAX + 16], e_type[48], e_path[96], e_netdev[SHIM_TS_NAME_MAX + 16],
		e_vif[48];
	char *env[8];
	char *argv[4];
	bool vif = !strcmp(dev->backend_kind, "vif");
	int status = 0, rc, n = 0;

	if (!dev_has_script(dev))
		return 0;
	rc = dev_script(ts, dev, &script);
	if (rc)
		return rc;

	snprintf(e_script, sizeof(e_script), "script=%s", script);
	snprintf(e_type, sizeof(e_type), "XENBUS_TYPE=%s", dev->backend_kind);
	snprintf(e_path, sizeof(e_path), "XENBUS_PATH=backend/%s/%u/%u", dev->backend_kind,
		 dev->domid, dev->devid);
	env[n++] = e_script;
	env[n++] = e_type;
	env[n++] = e_path;
	env[n++] = "XENBUS_BASE_PATH=backend";
	argv[0] = script;
	if (vif) {
		if (xenbus_read_str(ts->xs, XBT_NULL, dev->be, "gatewaydev", &gatewaydev))
			gatewaydev = NULL;
		snprintf(e_netdev, sizeof(e_netdev), "netdev=%s", gatewaydev ? gatewaydev : "");
		snprintf(e_vif, sizeof(e_vif), "vif=vif%u.%u", dev->domid, dev->devid);
		env[n++] = e_netdev;
		env[n++] = e_vif;
		argv[1] = add ? "online" : "offline";
		argv[2] = "type_if=vif";
		argv[3] = NULL;
	} else {
		argv[1] = add ? "add" : "remove";
		argv[2] = NULL;
	}
	env[n] = NULL;

	log_debug(WHO, "calling hotplug script: %s %s (%s)", argv[0], argv[1], e_path);
	rc = ts_exec(ts, argv, env, ts->hotplug_ms, &status);
	if (rc == -ETIMEDOUT) {
		log_err(WHO, "hotplug script %s %s timed out after %u ms, killed", argv[0],
			argv[1], ts->hotplug_ms);
	} else if (rc) {
		log_err(WHO, "cannot run hotplug script %s: %s", argv[0], strerror(-rc));
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *herr = NULL;

		if (xenbus_read_str(ts->xs, XBT_NULL, dev->be, "hotplug-error", &herr) == 0) {
			log_err(WHO, "script: %s", herr);
		} else {
			/* the script said nothing: record why it failed where libxl looks */
			char msg[PATH_MAX + 64];

			if (WIFEXITED(status))
				snprintf(msg, sizeof(msg), "%s %s exited with status %d", argv[0],
					 argv[1], WEXITSTATUS(status));
			else
				snprintf(msg, sizeof(msg), "%s %s killed by signal %d", argv[0],
					 argv[1], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			xenbus_write(ts->xs, XBT_NULL, dev->be, "hotplug-error", msg);
			log_err(WHO, "script: %s", msg);
		}
		free(herr);
		rc = -EIO;
	}
	free(gatewaydev);
	free(script);
	return rc;
}

/*
 * libxl__initiate_device_generic_remove and what follows it, for n devices at once
 * (libxl's multidev): start (online=0, state=5), wait for Closed, on timeout without
 * force retry once with force, then scripts, then delete the nodes. rcs[i] gets each
 * device's result. Returns the first error.
 */
static int devices_remove(struct shim_ts *ts, struct ts_dev *devs, size_t n, bool force,
			  int *rcs)
{
	struct ts_waiter *w = calloc(n ? n : 1, sizeof(*w));
	bool *forced = calloc(n ? n : 1, sizeof(bool));
	size_t *map = calloc(n ? n : 1, sizeof(size_t));
	int first = 0;

	if (!w || !forced || !map) {
		free(w);
		free(forced);
		free(map);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		rcs[i] = 1; /* in progress */
		forced[i] = force;
	}

	for (int pass = 0; pass < 2; pass++) {
		size_t nw = 0;

		for (size_t i = 0; i < n; i++) {
			struct remove_start rs = { .dev = &devs[i], .force = forced[i] };
			int rc;

			if (rcs[i] != 1)
				continue;
			rc = xenbus_transaction(ts->xs, remove_start_t, &rs, TS_TXN_TRIES);
			if (rc) {
				rcs[i] = rc;
				continue;
			}
			if (rs.backend_gone) {
				log_info(WHO, "backend %s already removed, cleanup frontend only",
					 devs[i].be);
				rcs[i] = 0;
				continue;
			}
			snprintf(w[nw].path, sizeof(w[nw].path), "%s/state", devs[i].be);
			w[nw].wanted = XenbusStateClosed;
			map[nw++] = i;
		}
		if (!nw)
			break;
		{
			int rc = ts_wait(ts, w, nw, ts->destroy_ms);

			for (size_t k = 0; k < nw; k++) {
				size_t i = map[k];
				int r = rc ? rc : w[k].rc;

				if (r == -ETIMEDOUT && !forced[i]) {
					log_info(WHO, "timeout reached for %s, initiating forced "
						      "remove", devs[i].be);
					forced[i] = true; /* rcs[i] stays 1: next pass */
					continue;
				}
				if (r == 0) {
					/* Closed: run the script (errors on removal are logged
					 * and ignored, as libxl does) */
					run_hotplug(ts, &devs[i], false);
				} else {
					log_err(WHO, "unable to remove device with path %s: %s",
						devs[i].be, strerror(-r));
				}
				rcs[i] = r;
			}
		}
	}

	for (size_t i = 0; i < n; i++) {
		if (rcs[i] == 1)
			rcs[i] = -ETIMEDOUT;
		if (devs[i].backend_domid != 0 && rcs[i] == 0) {
			/* driver domain: it runs the script and removes the backend; wait */
			struct ts_waiter dw = { .wanted = -1 };

			snprintf(dw.path, sizeof(dw.path), "%s", devs[i].be);
			if (ts_wait(ts, &dw, 1, ts->destroy_ms) == 0 && dw.rc) {
				log_err(WHO, "timed out while waiting for %s to be removed",
					devs[i].be);
				rcs[i] = dw.rc;
			}
		}
		/* device_hotplug_done: nodes go when forced or when all went well */
		if (forced[i] || rcs[i] == 0) {
			int rc = device_destroy(ts, &devs[i]);

			if (!rcs[i])
				rcs[i] = rc;
		}
		if (rcs[i] && !first)
			first = rcs[i];
	}
	free(w);
	free(forced);
	free(map);
	return first;
}

/* libxl__wait_device_connection + device_hotplug for an add; removes it on failure. */
static int device_connect(struct shim_ts *ts, struct ts_dev *dev)
{
	struct ts_waiter w = { .wanted = XenbusStateInitWait };
	int rc, rrc;

	if (!strcmp(dev->backend_kind, "qdisk"))
		return 0; /* QEMU_BACKEND: libxl neither waits nor runs a script */

	snprintf(w.path, sizeof(w.path), "%s/state", dev->be);
	rc = ts_wait(ts, &w, 1, ts->init_ms);
	if (!rc)
		rc = w.rc;
	if (rc) {
		log_err(WHO, "unable to add device with path %s: %s", dev->be,
			rc == -ETIMEDOUT ? "backend did not reach InitWait in time" :
					   strerror(-rc));
		/* nothing answered: just drop the nodes */
		device_destroy(ts, dev);
		return rc;
	}
	rc = run_hotplug(ts, dev, true);
	if (rc) {
		/* the backend is alive: take the device down the normal way */
		devices_remove(ts, dev, 1, false, &rrc);
		return rc;
	}
	return 0;
}

int shim_ts_disk_attach(struct shim_ts *ts, unsigned int domid,
			const struct shim_disk_spec *spec, unsigned int *devid_out)
{
	struct ts_kvs back = { 0 }, front = { 0 };
	struct generic_add ga;
	struct ts_dev dev;
	enum shim_disk_backend bt = spec->backendtype;
	unsigned int bdom, devid;
	char sbuf[PATH_MAX], *type = NULL;
	bool discard, trusted;
	int rc;

	rc = domain_check(ts, domid);
	if (rc)
		return rc;
	rc = resolve_domid(ts, spec->backend, &bdom);
	if (rc)
		return rc;
	rc = shim_vdev_to_devid(spec->vdev, &devid);
	if (rc) {
		log_err(WHO, "invalid or unsupported virtual disk identifier %s", spec->vdev);
		return rc;
	}

	/* libxl__device_disk_set_backend */
	if (spec->format == SHIM_DISK_FORMAT_EMPTY && !spec->is_cdrom) {
		log_err(WHO, "disk vdev=%s is empty but not cdrom", spec->vdev);
		return -EINVAL;
	}
	if (bt != SHIM_DISK_BACKEND_QDISK && bdom == 0 && !*spec->script &&
	    spec->format != SHIM_DISK_FORMAT_EMPTY) {
		struct stat st;

		if (stat(spec->target, &st)) {
			rc = -errno;
			log_err(WHO, "disk vdev=%s failed to stat: %s", spec->vdev, spec->target);
			return rc;
		}
		/* libxl__try_phy_backend (Linux): block device or regular file */
		if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
			if (bt == SHIM_DISK_BACKEND_PHY) {
				log_err(WHO, "phy backend unsuitable: %s is not a block device "
					     "or file", spec->target);
				return -EINVAL;
			}
			bt = SHIM_DISK_BACKEND_QDISK;
		}
	}
	if (bt == SHIM_DISK_BACKEND_UNKNOWN)
		bt = (spec->format == SHIM_DISK_FORMAT_RAW ||
		      spec->format == SHIM_DISK_FORMAT_EMPTY) ?
			     SHIM_DISK_BACKEND_PHY :
			     SHIM_DISK_BACKEND_QDISK;
	if (bt == SHIM_DISK_BACKEND_PHY && spec->format != SHIM_DISK_FORMAT_RAW &&
	    !(spec->is_cdrom && spec->format == SHIM_DISK_FORMAT_EMPTY)) {
		log_err(WHO, "backend phy unsuitable due to the disk format");
		return -EINVAL;
	}
	if (bt == SHIM_DISK_BACKEND_QDISK && *spec->script) {
		log_err(WHO, "backend qdisk not compatible with script=...");
		return -EINVAL;
	}
	discard = spec->discard < 0 ? spec->readwrite : spec->discard;
	trusted = spec->trusted != 0;

	rc = dev_init(&dev, domid, "vbd", bt == SHIM_DISK_BACKEND_PHY ? "vbd" : "qdisk", bdom,
		      devid);
	if (rc)
		return rc;

	/* device_disk_add: every key, in libxl's order */
	if (bt == SHIM_DISK_BACKEND_PHY) {
		kvs_add(&back, "params", "%s", spec->target);
		kvs_add(&back, "script", "%s",
			abs_script(ts, *spec->script ? spec->script : "block", sbuf,
				   sizeof(sbuf)));
	} else {
		static const char *const fmt[] = {
			[SHIM_DISK_FORMAT_UNKNOWN] = "aio", [SHIM_DISK_FORMAT_RAW] = "aio",
			[SHIM_DISK_FORMAT_QCOW] = "qcow",   [SHIM_DISK_FORMAT_QCOW2] = "qcow2",
			[SHIM_DISK_FORMAT_VHD] = "vhd",     [SHIM_DISK_FORMAT_QED] = "qed",
			[SHIM_DISK_FORMAT_EMPTY] = "aio",
		};
		kvs_add(&back, "params", "%s:%s", fmt[spec->format], spec->target);
	}
	kvs_add(&back, "frontend-id", "%u", domid);
	kvs_add(&back, "online", "1");
	kvs_add(&back, "removable", "%d", spec->removable ? 1 : 0);
	kvs_add(&back, "bootable", "%d", 1);
	kvs_add(&back, "state", "%d", XenbusStateInitialising);
	kvs_add(&back, "dev", "%s", spec->vdev);
	kvs_add(&back, "type", "%s", bt == SHIM_DISK_BACKEND_PHY ? "phy" : "qdisk");
	kvs_add(&back, "mode", "%s", spec->readwrite ? "w" : "r");
	kvs_add(&back, "device-type", "%s", spec->is_cdrom ? "cdrom" : "disk");
	if (spec->direct_io_safe)
		kvs_add(&back, "direct-io-safe", "1");
	kvs_add(&back, "discard-enable", "%s", discard ? "1" : "0");
	kvs_add(&back, "specification", "xen");

	kvs_add(&front, "backend-id", "%u", bdom);
	kvs_add(&front, "state", "%d", XenbusStateInitialising);
	kvs_add(&front, "virtual-device", "%u", devid);
	kvs_add(&front, "device-type", "%s", spec->is_cdrom ? "cdrom" : "disk");
	kvs_add(&front, "trusted", "%s", trusted ? "1" : "0");
	/* PV guests: the native protocol, for pre-2.6.26 frontends (we only build
	 * 64-bit PV domains) */
	{
		char p[64];

		snprintf(p, sizeof(p), "/libxl/%u", domid);
		if (xenbus_read_str(ts->xs, XBT_NULL, p, "type", &type) == 0 &&
		    !strcmp(type, "pv"))
			kvs_add(&front, "protocol", "%s", XEN_IO_PROTO_ABI_X86_64);
		free(type);
	}
	rc = back.err ? back.err : front.err;
	if (rc)
		goto out;

	ga = (struct generic_add){ .dev = &dev, .back = &back, .front = &front };
	rc = xenbus_transaction(ts->xs, generic_add_t, &ga, TS_TXN_TRIES);
	if (rc)
		goto out;
	rc = device_connect(ts, &dev);
	if (!rc && devid_out)
		*devid_out = devid;
out:
	kvs_free(&back);
	kvs_free(&front);
	return rc;
}

/* libxl__device_nextid: one past the highest vif devid under /libxl/<d>/device/vif. */
static int nic_nextid(struct shim_ts *ts, unsigned int domid, int *out)
{
	char path[64], **dir;
	unsigned int n = 0;
	long next = 0;

	snprintf(path, sizeof(path), "/libxl/%u/device/vif", domid);
	dir = xs_directory(ts->xs, XBT_NULL, path, &n);
	for (unsigned int i = 0; dir && i < n; i++) {
		unsigned long v;

		if (parse_dec(dir[i], strlen(dir[i]), INT_MAX - 1, &v) == 0 && (long)v >= next)
			next = (long)v + 1;
	}
	free(dir);
	*out = (int)next;
	return 0;
}

int shim_ts_nic_attach(struct shim_ts *ts, unsigned int domid, struct shim_nic_spec *nic)
{
	struct ts_kvs back = { 0 }, front = { 0 }, ro_front = { 0 };
	struct generic_add ga;
	struct ts_dev dev;
	unsigned int bdom, mtu;
	char mac[18], sbuf[PATH_MAX];
	int rc;

	rc = domain_check(ts, domid);
	if (rc)
		return rc;
	rc = resolve_domid(ts, nic->backend, &bdom);
	if (rc)
		return rc;

	/* libxl__device_nic_setdefault */
	mtu = nic->mtu ? nic->mtu : SHIM_TS_NIC_MTU_DEFAULT;
	if (!nic->mac_set) {
		rc = shim_mac_generate(nic->mac);
		if (rc)
			return rc;
		nic->mac_set = true;
	}
	if (nic->devid < 0) {
		rc = nic_nextid(ts, domid, &nic->devid);
		if (rc)
			return rc;
	}
	shim_mac_format(nic->mac, mac);
	rc = dev_init(&dev, domid, "vif", "vif", bdom, (unsigned int)nic->devid);
	if (rc)
		return rc;

	/* libxl__device_add_async + libxl__set_xenstore_nic, in that order */
	kvs_add(&back, "frontend-id", "%u", domid);
	kvs_add(&back, "online", "1");
	kvs_add(&back, "state", "%d", XenbusStateInitialising);
	kvs_add(&front, "backend-id", "%u", bdom);
	kvs_add(&front, "state", "%d", XenbusStateInitialising);

	kvs_add(&back, "script", "%s",
		abs_script(ts, *nic->script ? nic->script : "vif", sbuf, sizeof(sbuf)));
	if (*nic->vifname)
		kvs_add(&back, "vifname", "%s", nic->vifname);
	kvs_add(&back, "mac", "%s", mac);
	if (*nic->ip)
		kvs_add(&back, "ip", "%s", nic->ip);
	if (*nic->gatewaydev)
		kvs_add(&back, "gatewaydev", "%s", nic->gatewaydev);
	if (nic->rate_interval_usecs > 0)
		kvs_add(&back, "rate", "%" PRIu64 ",%" PRIu32, nic->rate_bytes_per_interval,
			nic->rate_interval_usecs);
	if (mtu != SHIM_TS_NIC_MTU_DEFAULT)
		kvs_add(&back, "mtu", "%u", mtu);
	kvs_add(&back, "bridge", "%s", *nic->bridge ? nic->bridge : "xenbr0");
	kvs_add(&back, "handle", "%d", nic->devid);
	kvs_add(&back, "type", "vif");

	kvs_add(&front, "handle", "%d", nic->devid);
	kvs_add(&front, "mac", "%s", mac);
	kvs_add(&ro_front, "mtu", "%u", mtu);
	/* force the backend to wait for the hotplug script before connecting */
	kvs_add(&back, "hotplug-status", "%s", "");
	kvs_add(&front, "trusted", "%s", nic->trusted != 0 ? "1" : "0");

	rc = back.err ? back.err : front.err ? front.err : ro_front.err;
	if (rc)
		goto out;
	ga = (struct generic_add){ .dev = &dev, .back = &back, .front = &front,
				   .ro_front = &ro_front };
	rc = xenbus_transaction(ts->xs, generic_add_t, &ga, TS_TXN_TRIES);
	if (!rc)
		rc = device_connect(ts, &dev);
out:
	kvs_free(&back);
	kvs_free(&front);
	kvs_free(&ro_front);
	return rc;
}

/* Rebuild a device from its /libxl copy (libxl__parse_backend_path on .../backend). */
static int dev_from_libxl(struct shim_ts *ts, unsigned int domid, const char *kind,
			  unsigned int devid, struct ts_dev *dev)
{
	char lx[XENBUS_PATH_MAX], bkind[16], *be;
	unsigned int bdom, fe, id;
	const char *rest;
	int rc;

	snprintf(lx, sizeof(lx), "/libxl/%u/device/%s/%u", domid, kind, devid);
	rc = xenbus_read_str(ts->xs, XBT_NULL, lx, "backend", &be);
	if (rc)
		return rc;
	rc = xenbus_parse_backend_path(be, &bdom, bkind, sizeof(bkind), &fe, &id, &rest);
	if (!rc && (*rest || fe != domid || id != devid))
		rc = -EINVAL; /* rest points into be: check before freeing it */
	free(be);
	if (rc)
		return -EINVAL;
	return dev_init(dev, domid, !strcmp(kind, "vif") ? "vif" : "vbd", bkind, bdom, devid);
}

int shim_ts_device_detach(struct shim_ts *ts, unsigned int domid, enum shim_ts_kind kind,
			  unsigned int devid)
{
	struct ts_dev dev;
	int rc, drc;

	rc = dev_from_libxl(ts, domid, kind == SHIM_TS_VIF ? "vif" : "vbd", devid, &dev);
	if (rc) {
		log_err(WHO, "no %s device %u on domain %u", kind == SHIM_TS_VIF ? "vif" : "vbd",
			devid, domid);
		return rc == -EINVAL ? -EINVAL : -ENOENT;
	}
	rc = devices_remove(ts, &dev, 1, false, &drc);
	return rc;
}

int shim_ts_disk_find(struct shim_ts *ts, unsigned int domid, const char *vdev,
		      unsigned int *devid)
{
	char lx[XENBUS_PATH_MAX], *dev;
	unsigned int id;
	int rc = shim_vdev_to_devid(vdev, &id);

	if (rc)
		return rc;
	/* libxl_vdev_to_device_disk: the devid, confirmed by the /libxl copy */
	snprintf(lx, sizeof(lx), "/libxl/%u/device/vbd/%u", domid, id);
	rc = xenbus_read_str(ts->xs, XBT_NULL, lx, "dev", &dev);
	if (rc)
		return rc == -ENOENT ? -ENOENT : rc;
	free(dev);
	*devid = id;
	return 0;
}

int shim_ts_nic_find(struct shim_ts *ts, unsigned int domid, const char *mac,
		     unsigned int *devid)
{
	uint8_t want[6], got[6];
	char path[64], **dir;
	unsigned int n = 0;
	int rc = -ENOENT;

	if (shim_mac_parse(mac, want))
		return -EINVAL;
	snprintf(path, sizeof(path), "/libxl/%u/device/vif", domid);
	dir = xs_directory(ts->xs, XBT_NULL, path, &n);
	for (unsigned int i = 0; dir && i < n && rc; i++) {
		char p[XENBUS_PATH_MAX], *m;
		unsigned long id;

		if (parse_dec(dir[i], strlen(dir[i]), INT_MAX, &id))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, dir[i]);
		if (xenbus_read_str(ts->xs, XBT_NULL, p, "mac", &m))
			continue;
		if (shim_mac_parse(m, got) == 0 && !memcmp(got, want, 6)) {
			*devid = (unsigned int)id;
			rc = 0;
		}
		free(m);
	}
	free(dir);
	return rc;
}

/* ---- domains ---- */

struct domain_make {
	unsigned int domid;
	const char *name;
	char uuid[37];
	unsigned int memory_kib;
	unsigned int vcpus;
};

/* libxl__domain_make's transaction. */
static int domain_make_t(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	const struct domain_make *dm = arg;
	char dom[64], vm[64], lx[64];
	struct xs_permissions noperm[1] = { { .id = 0, .perms = XS_PERM_NONE } };
	struct xs_permissions roperm[2] = { { .id = 0, .perms = XS_PERM_NONE },
					    { .id = dm->domid, .perms = XS_PERM_READ } };
	/* the guest owns these: it may write them */
	struct xs_permissions rwperm[1] = { { .id = dm->domid, .perms = XS_PERM_NONE } };
	static const char *const ro_dirs[] = { "cpu", "memory", "device" };
	static const char *const control_rw[] = { "control/shutdown", "control/feature-poweroff",
						  "control/feature-reboot",
						  "control/feature-suspend", "control/sysrq" };
	static const char *const rw_dirs[] = { "data", "drivers", "feature", "attr", "error" };
	int rc;

	snprintf(dom, sizeof(dom), "/local/domain/%u", dm->domid);
	snprintf(vm, sizeof(vm), "/vm/%s", dm->uuid);
	snprintf(lx, sizeof(lx), "/libxl/%u", dm->domid);

	rc = xenbus_rm(xs, t, dom, NULL);
	if (!rc)
		rc = mknod_t(xs, t, dom, NULL, roperm, 2);
	if (!rc)
		rc = xenbus_rm(xs, t, vm, NULL);
	if (!rc)
		rc = mknod_t(xs, t, vm, NULL, roperm, 2);
	if (!rc)
		rc = xenbus_rm(xs, t, lx, NULL);
	if (!rc)
		rc = mknod_t(xs, t, lx, NULL, noperm, 1);
	if (!rc)
		rc = mknod_t(xs, t, lx, "device", noperm, 1);
	if (!rc)
		rc = xenbus_write(xs, t, dom, "vm", vm);
	if (!rc)
		rc = xenbus_write(xs, t, dom, "name", dm->name); /* libxl__domain_rename */
	for (size_t i = 0; !rc && i < sizeof(ro_dirs) / sizeof(ro_dirs[0]); i++)
		rc = mknod_t(xs, t, dom, ro_dirs[i], roperm, 2);
	if (!rc)
		rc = mknod_t(xs, t, dom, "device/suspend/event-channel", rwperm, 1);
	if (!rc)
		rc = mknod_t(xs, t, dom, "control", roperm, 2);
	for (size_t i = 0; !rc && i < sizeof(control_rw) / sizeof(control_rw[0]); i++)
		rc = mknod_t(xs, t, dom, control_rw[i], rwperm, 1);
	for (size_t i = 0; !rc && i < sizeof(rw_dirs) / sizeof(rw_dirs[0]); i++)
		rc = mknod_t(xs, t, dom, rw_dirs[i], rwperm, 1);
	if (!rc)
		rc = xenbus_write(xs, t, vm, "uuid", dm->uuid);
	if (!rc)
		rc = xenbus_write(xs, t, vm, "name", dm->name);
	if (!rc)
		rc = xenbus_write(xs, t, dom, "control/platform-feature-multiprocessor-suspend",
				  "1");
	if (!rc)
		rc = xenbus_write(xs, t, dom, "control/platform-feature-xs_reset_watches", "1");
	if (!rc)
		rc = xenbus_write(xs, t, lx, "type", "pv");
	return rc;
}

/* libxl__build_post's writes (no store/console rings in the shim: see docs). */
static int domain_post_t(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	const struct domain_make *dm = arg;
	char dom[64], vm[64];
	int rc;

	snprintf(dom, sizeof(dom), "/local/domain/%u", dm->domid);
	snprintf(vm, sizeof(vm), "/vm/%s", dm->uuid);
	rc = xenbus_printf(xs, t, dom, "memory/static-max", "%u", dm->memory_kib);
	if (!rc)
		rc = xenbus_printf(xs, t, dom, "memory/target", "%u", dm->memory_kib);
	if (!rc)
		rc = xenbus_write(xs, t, dom, "memory/videoram", "0");
	if (!rc)
		rc = xenbus_printf(xs, t, dom, "domid", "%u", dm->domid);
	for (unsigned int i = 0; !rc && i < dm->vcpus; i++) {
		char key[32];

		snprintf(key, sizeof(key), "cpu/%u/availability", i);
		rc = xenbus_write(xs, t, dom, key, "online");
	}
	if (!rc)
		rc = xenbus_write(xs, t, vm, "image/ostype", "linux");
	if (!rc) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		rc = xenbus_printf(xs, t, vm, "start_time", "%jd.%02ld", (intmax_t)ts.tv_sec,
				   ts.tv_nsec / 10000000);
	}
	return rc;
}

/* Is name used by a domain other than domid? */
static int name_taken(struct shim_ts *ts, const char *name, unsigned int domid)
{
	char **dir;
	unsigned int n = 0;
	int taken = 0;

	dir = xs_directory(ts->xs, XBT_NULL, "/local/domain", &n);
	for (unsigned int i = 0; dir && i < n && !taken; i++) {
		char p[64], *nm;
		unsigned long id;

		if (parse_dec(dir[i], strlen(dir[i]), UINT_MAX, &id) || id == domid)
			continue;
		snprintf(p, sizeof(p), "/local/domain/%s", dir[i]);
		if (xenbus_read_str(ts->xs, XBT_NULL, p, "name", &nm) == 0) {
			taken = !strcmp(nm, name);
			free(nm);
		}
	}
	free(dir);
	return taken;
}

int shim_ts_domain_create(struct shim_ts *ts, unsigned int domid,
			  const struct shim_domain_opts *opts)
{
	struct domain_make dm = { .domid = domid };
	char defname[32], lx[64];
	uint8_t u[16];
	int rc;

	if (domid == 0 || domid > TS_DOMID_MAX)
		return -EINVAL;
	snprintf(defname, sizeof(defname), "guest%u", domid);
	dm.name = opts && opts->name ? opts->name : defname;
	if (!*dm.name || strlen(dm.name) >= SHIM_TS_NAME_MAX || strchr(dm.name, '/'))
		return -EINVAL;
	dm.memory_kib = (opts && opts->memory_mib ? opts->memory_mib : 128) * 1024u;
	dm.vcpus = opts && opts->vcpus ? opts->vcpus : 1;
	if (dm.vcpus > 128)
		return -EINVAL;

	snprintf(lx, sizeof(lx), "/libxl/%u", domid);
	rc = exists_t(ts->xs, XBT_NULL, lx);
	if (rc < 0)
		return rc;
	if (rc) {
		log_err(WHO, "domain %u already exists (%s)", domid, lx);
		return -EEXIST;
	}
	if (name_taken(ts, dm.name, domid)) {
		log_err(WHO, "domain with name \"%s\" already exists", dm.name);
		return -EEXIST;
	}

	/* a random (v4) uuid names /vm/<uuid> */
	if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u))
		return -EIO;
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(dm.uuid, sizeof(dm.uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);

	rc = xenbus_transaction(ts->xs, domain_make_t, &dm, TS_TXN_TRIES);
	if (!rc)
		rc = xenbus_transaction(ts->xs, domain_post_t, &dm, TS_TXN_TRIES);
	if (rc)
		log_err(WHO, "domain %u creation: xenstore: %s", domid, strerror(-rc));
	return rc;
}

/* Every device of a domain, from /libxl/<d>/device/{vbd,vif}. *out is malloc'd. */
static int domain_devices(struct shim_ts *ts, unsigned int domid, struct ts_dev **out,
			  size_t *nr)
{
	static const char *const kinds[] = { "vbd", "vif" };
	struct ts_dev *devs = NULL;
	size_t n = 0;

	for (size_t k = 0; k < 2; k++) {
		char path[64], **dir;
		unsigned int nd = 0;

		snprintf(path, sizeof(path), "/libxl/%u/device/%s", domid, kinds[k]);
		dir = xs_directory(ts->xs, XBT_NULL, path, &nd);
		for (unsigned int i = 0; dir && i < nd; i++) {
			unsigned long id;
			struct ts_dev *nd2;

			if (parse_dec(dir[i], strlen(dir[i]), UINT_MAX, &id))
				continue;
			nd2 = realloc(devs, (n + 1) * sizeof(*devs));
			if (!nd2) {
				free(dir);
				free(devs);
				return -ENOMEM;
			}
			devs = nd2;
			if (dev_from_libxl(ts, domid, kinds[k], (unsigned int)id, &devs[n]) == 0)
				n++;
		}
		free(dir);
	}
	*out = devs;
	*nr = n;
	return 0;
}

int shim_ts_domain_destroy(struct shim_ts *ts, unsigned int domid)
{
	struct ts_dev *devs = NULL;
	size_t n = 0;
	char dom[64], lx[64], *vm = NULL;
	int rc, e1, e2;

	if (domid == 0 || domid > TS_DOMID_MAX)
		return -EINVAL;
	snprintf(dom, sizeof(dom), "/local/domain/%u", domid);
	snprintf(lx, sizeof(lx), "/libxl/%u", domid);
	e1 = exists_t(ts->xs, XBT_NULL, dom);
	e2 = exists_t(ts->xs, XBT_NULL, lx);
	if (e1 < 0 || e2 < 0)
		return e1 < 0 ? e1 : e2;
	if (!e1 && !e2)
		return -ENOENT;

	rc = domain_devices(ts, domid, &devs, &n);
	if (rc)
		return rc;
	if (n) {
		int *rcs = calloc(n, sizeof(int));

		if (!rcs) {
			free(devs);
			return -ENOMEM;
		}
		/* libxl__devices_destroy with force: failures are logged, not fatal */
		if (devices_remove(ts, devs, n, true, rcs))
			log_warn(WHO, "domain %u: some devices did not close cleanly", domid);
		free(rcs);
	}
	free(devs);

	/* devices_destroy_cb: /vm/<uuid>, the domain's home, /libxl/<d> */
	if (xenbus_read_str(ts->xs, XBT_NULL, dom, "vm", &vm) == 0) {
		if (!strncmp(vm, "/vm/", 4))
			xenbus_rm(ts->xs, XBT_NULL, vm, NULL);
		free(vm);
	}
	rc = xenbus_rm(ts->xs, XBT_NULL, dom, NULL);
	if (!rc)
		rc = xenbus_rm(ts->xs, XBT_NULL, lx, NULL);
	return rc;
}

static void print_state(FILE *out, struct shim_ts *ts, const char *dir)
{
	int st;

	if (dir && xenbus_read_state(ts->xs, XBT_NULL, dir, &st) == 0)
		fprintf(out, " %d/%-12s", st, xenbus_state_name(st));
	else
		fprintf(out, " %-14s", "-");
}

int shim_ts_list(struct shim_ts *ts, FILE *out)
{
	char **dir;
	unsigned int n = 0;

	errno = 0;
	dir = xs_directory(ts->xs, XBT_NULL, "/local/domain", &n);
	if (!dir)
		return errno == ENOENT ? 0 : errno_or_eio();
	fprintf(out, "%-6s %-20s\n", "ID", "Name");
	for (unsigned int i = 0; i < n; i++) {
		char p[64], *nm = NULL;
		unsigned long id;
		struct ts_dev *devs = NULL;
		size_t nd = 0;

		if (parse_dec(dir[i], strlen(dir[i]), UINT_MAX, &id))
			continue;
		snprintf(p, sizeof(p), "/local/domain/%s", dir[i]);
		if (xenbus_read_str(ts->xs, XBT_NULL, p, "name", &nm))
			nm = NULL;
		fprintf(out, "%-6lu %-20s\n", id, nm ? nm : (id == 0 ? "Domain-0" : "-"));
		free(nm);
		if (id == 0 || domain_devices(ts, (unsigned int)id, &devs, &nd))
			continue;
		if (nd)
			fprintf(out, "       %-5s %-10s %-17s %-3s %-14s %-14s %s\n", "Kind",
				"Devid", "Vdev/MAC", "BE", "FE-state", "BE-state", "BE-path");
		for (size_t k = 0; k < nd; k++) {
			char *what = NULL;

			xenbus_read_str(ts->xs, XBT_NULL, devs[k].lx,
					!strcmp(devs[k].kind, "vif") ? "mac" : "dev", &what);
			fprintf(out, "       %-5s %-10u %-17s %-3u", devs[k].backend_kind,
				devs[k].devid, what ? what : "-", devs[k].backend_domid);
			print_state(out, ts, devs[k].fe);
			print_state(out, ts, devs[k].be);
			fprintf(out, " %s\n", devs[k].be);
			free(what);
		}
		free(devs);
	}
	free(dir);
	return 0;
}
