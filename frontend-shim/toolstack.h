/*
 * toolstack — the xenstore half of libxl (xl create/destroy, block-attach/-detach,
 * network-attach/-detach) replayed for the shim: the same nodes, values, permissions
 * and order, the same waits and timeouts, and the same hotplug-script calls.
 * Counterpart: tools/libs/light/libxl_{create,device,disk,nic,linux,domain}.c (Xen 4.17).
 * Front door: frontend-shim/cmd/splitpv-xl.c; user docs: docs/SHIM.md "Shim command line".
 */
#ifndef SPLITPV_SHIM_TOOLSTACK_H
#define SPLITPV_SHIM_TOOLSTACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <xenstore.h>

/* libxl's timeouts (libxl_internal.h): LIBXL_INIT_TIMEOUT, LIBXL_DESTROY_TIMEOUT,
 * LIBXL_HOTPLUG_TIMEOUT. Overridable (tests) with the env vars below, in ms. */
#define SHIM_TS_INIT_TIMEOUT_MS 10000u
#define SHIM_TS_DESTROY_TIMEOUT_MS 10000u
#define SHIM_TS_HOTPLUG_TIMEOUT_MS 40000u
#define SHIM_TS_ENV_INIT_TIMEOUT "SPLITPV_XL_INIT_TIMEOUT_MS"
#define SHIM_TS_ENV_DESTROY_TIMEOUT "SPLITPV_XL_DESTROY_TIMEOUT_MS"
#define SHIM_TS_ENV_HOTPLUG_TIMEOUT "SPLITPV_XL_HOTPLUG_TIMEOUT_MS"
/* Directory our default hotplug scripts (tools/hotplug/{block,vif}) live in. */
#define SHIM_TS_ENV_SCRIPT_DIR "SPLITPV_HOTPLUG_DIR"

/* libxl_device_nic's default MTU (LIBXL_DEVICE_NIC_MTU_DEFAULT). */
#define SHIM_TS_NIC_MTU_DEFAULT 1500u

#define SHIM_TS_STR_MAX 1024u   /* target paths, scripts, bridge names, ... */
#define SHIM_TS_VDEV_MAX 32u
#define SHIM_TS_NAME_MAX 64u

/* ---- pure parts (no I/O; unit-tested) ---- */

enum shim_disk_backend {
	SHIM_DISK_BACKEND_UNKNOWN = 0, /* libxl picks: phy for raw files/devices, else qdisk */
	SHIM_DISK_BACKEND_PHY,         /* kind "vbd", type "phy", params = target verbatim */
	SHIM_DISK_BACKEND_QDISK,       /* kind "qdisk", params = "<fmt>:<target>", no script */
};

enum shim_disk_format {
	SHIM_DISK_FORMAT_UNKNOWN = 0,
	SHIM_DISK_FORMAT_RAW,
	SHIM_DISK_FORMAT_QCOW,
	SHIM_DISK_FORMAT_QCOW2,
	SHIM_DISK_FORMAT_VHD,
	SHIM_DISK_FORMAT_QED,
	SHIM_DISK_FORMAT_EMPTY,
};

/* A parsed xl-disk-configuration(5) line (the subset we accept; see docs/SHIM.md). */
struct shim_disk_spec {
	char target[SHIM_TS_STR_MAX];  /* "" = none (only a cdrom may have none) */
	char vdev[SHIM_TS_VDEV_MAX];
	char script[SHIM_TS_STR_MAX];  /* "" = default */
	char backend[SHIM_TS_NAME_MAX]; /* backend domain name or id; "" = 0 */
	enum shim_disk_backend backendtype;
	enum shim_disk_format format;
	bool readwrite;
	bool is_cdrom;
	bool removable;
	bool direct_io_safe;
	int discard;  /* -1 default (= readwrite), 0 no-discard, 1 discard */
	int trusted;  /* -1 default (= 1), 0 untrusted, 1 trusted */
};

/*
 * Parse "target=/p,vdev=xvda,access=rw,..." like xlu_disk_parse: keys format, vdev,
 * access (r|ro|rw|w), devtype (disk|cdrom), cdrom, backend, backendtype (phy|qdisk),
 * script, discard, no-discard, direct-io-safe, trusted, untrusted, specification=xen,
 * and target=, which takes the rest of the string (commas included) as xl does.
 * Positional forms: "<target>,<format>,<vdev>,<access>" (format may be empty) as xl.
 * After parsing: format defaults to raw; a cdrom is removable and read-only.
 * Returns 0, -EINVAL (unknown key/value, missing vdev, missing target on a non-cdrom),
 * or -ENAMETOOLONG. err (may be NULL) receives a one-line reason.
 */
int shim_disk_spec_parse(const char *spec, struct shim_disk_spec *out, char *err,
			 size_t err_len);

/*
 * Virtual disk name -> devid as libxl__device_disk_dev_number (xen-vbd-interface.7):
 * xvd<letters>[<part>] -> 202<<8|disk<<4|part (disk<=15 && part<=15) else
 * 1<<28|disk<<8|part; hd[a-d] -> 3<<8|(disk&1)<<6|part or 22<<8|...; sd[a-p] ->
 * 8<<8|disk<<4|part; d<disk>p<part>; a bare number is the devid itself.
 * 0 or -EINVAL.
 */
int shim_vdev_to_devid(const char *vdev, unsigned int *devid);

/* A random MAC with Xen's OUI, as libxl: 00:16:3e:(r0 & 0x7f):r1:r2. 0 or -errno. */
int shim_mac_generate(uint8_t mac[6]);
/* "xx:xx:xx:xx:xx:xx" (hex, either case) -> bytes. 0 or -EINVAL. */
int shim_mac_parse(const char *s, uint8_t mac[6]);
/* Lower-case "%02x:..." into buf (>= 18 bytes). */
void shim_mac_format(const uint8_t mac[6], char buf[18]);

/* A parsed xl-network-configuration(5) line (subset). */
struct shim_nic_spec {
	int devid;           /* -1 = next free (libxl__device_nextid) */
	bool mac_set;        /* false = generate */
	uint8_t mac[6];
	char bridge[SHIM_TS_NAME_MAX];  /* "" = xenbr0 */
	char ip[SHIM_TS_STR_MAX];
	char script[SHIM_TS_STR_MAX];   /* "" = default */
	char vifname[SHIM_TS_NAME_MAX];
	char gatewaydev[SHIM_TS_NAME_MAX];
	char backend[SHIM_TS_NAME_MAX];
	uint64_t rate_bytes_per_interval; /* 0 = no rate */
	uint32_t rate_interval_usecs;
	unsigned int mtu;                 /* 0 = 1500 */
	int trusted;                      /* -1 default (1) */
};

/*
 * Parse "mac=..,bridge=..,ip=..,rate=10Mb/s@20ms,mtu=..,vifname=..,script=..,
 * gatewaydev=..,backend=..,devid=..,type=vif,trusted|untrusted" (keys we don't
 * serve, like model=, are refused). rate follows xlu_vif_parse_rate (default interval
 * 50 ms). 0, -EINVAL, -ERANGE, -ENAMETOOLONG; err as above.
 */
int shim_nic_spec_parse(const char *spec, struct shim_nic_spec *out, char *err,
			size_t err_len);
/* xlu_vif_parse_rate: "<n>[GMK](B|b)/s[@<n>[m|u]s]" -> bytes per interval. */
int shim_nic_rate_parse(const char *rate, uint64_t *bytes_per_interval,
			uint32_t *interval_usecs);

/* ---- the toolstack (talks to xenstore as dom0; one caller at a time) ---- */

struct shim_ts_config {
	/* rundir of the shim (we connect to <rundir>/socket and export XENSTORED_PATH
	 * for hotplug scripts). NULL: use XENSTORED_PATH / libxenstore's defaults. */
	const char *rundir;
	/* Where relative script names and the defaults "block"/"vif" resolve. */
	const char *script_dir;
	unsigned int init_timeout_ms;     /* 0 = default */
	unsigned int destroy_timeout_ms;
	unsigned int hotplug_timeout_ms;
};

/* Fill cfg with the defaults, then apply the SPLITPV_XL_*_TIMEOUT_MS and
 * SPLITPV_HOTPLUG_DIR env vars when set. -EINVAL if one is malformed. */
int shim_ts_config_from_env(struct shim_ts_config *cfg);

struct shim_ts;

/*
 * Connect (XENSTORED_PATH=<rundir>/socket is set in this process's environment, so
 * it is not thread-safe against other getenv users). 0 or -errno. Caller frees with
 * shim_ts_close (NULL ok). The config strings are copied.
 */
int shim_ts_open(struct shim_ts **out, const struct shim_ts_config *cfg);
void shim_ts_close(struct shim_ts *ts);

/* The effective timeouts (tests check the defaults). */
void shim_ts_timeouts(const struct shim_ts *ts, unsigned int *init_ms,
		      unsigned int *destroy_ms, unsigned int *hotplug_ms);

struct shim_domain_opts {
	const char *name;            /* NULL -> "guest<domid>" */
	unsigned int memory_mib;     /* 0 -> 128 */
	unsigned int vcpus;          /* 0 -> 1 */
};

/*
 * xl create, xenstore part (libxl__domain_make + libxl__build_post): /local/domain/<d>
 * (n0,r<d>) with vm, name, domid, cpu/, memory/{static-max,target,videoram}, device/
 * (+ suspend/event-channel), control/ (+ the guest-writable feature nodes), data/,
 * drivers/, feature/, attr/, error/ (n<d>), /vm/<uuid>, /libxl/<d> (n0) with device/
 * and type=pv. One transaction. -EEXIST if the domain's name is taken by another
 * domain, -EINVAL for domid 0 or > 32751 (DOMID_FIRST_RESERVED-1).
 */
int shim_ts_domain_create(struct shim_ts *ts, unsigned int domid,
			  const struct shim_domain_opts *opts);

/*
 * xl destroy: every device under /libxl/<d>/device is removed with force (frontend
 * dir deleted first, online=0, state=5, wait <= destroy timeout for 6, hotplug
 * script "remove"/"offline", nodes deleted), all in parallel, then /vm/<uuid>,
 * /local/domain/<d> and /libxl/<d> are deleted. The shim's hypervisor fires
 * @releaseDomain when the guest process holding the domain goes away; we only remove
 * nodes. -ENOENT if the domain has no nodes; device timeouts are logged, not fatal.
 */
int shim_ts_domain_destroy(struct shim_ts *ts, unsigned int domid);

/*
 * xl block-attach: write the vbd (or qdisk) nodes in one transaction, then (phy)
 * wait for backend state == 2 (init timeout), then run the hotplug script
 * "<script> add" (hotplug timeout). Returns 0 and *devid, or: -EEXIST (device exists),
 * -ENOENT (no such domain), -EINVAL (bad spec), -ETIMEDOUT (no InitWait in time),
 * -EIO (script failed; <backend>/hotplug-error holds the reason), -errno. On any
 * failure after the nodes were written the device is removed again.
 */
int shim_ts_disk_attach(struct shim_ts *ts, unsigned int domid,
			const struct shim_disk_spec *spec, unsigned int *devid);

/* xl network-attach. spec->devid/mac are filled in (libxl's choices). As above. */
int shim_ts_nic_attach(struct shim_ts *ts, unsigned int domid, struct shim_nic_spec *spec);

enum shim_ts_kind { SHIM_TS_VBD, SHIM_TS_VIF };

/*
 * xl block-detach / network-detach: backend online=0 then state=5 (one transaction),
 * wait for state 6; on timeout retry once with force (frontend dir deleted first);
 * then the script (remove|offline), then delete frontend, backend and /libxl nodes.
 * Returns 0, -ENOENT (no such device), or -ETIMEDOUT (the backend never reached
 * Closed; the nodes were deleted anyway, as libxl's forced remove does).
 */
int shim_ts_device_detach(struct shim_ts *ts, unsigned int domid, enum shim_ts_kind kind,
			  unsigned int devid);

/* Look up a disk's devid by vdev (from /libxl/<d>/device/vbd/<id>/dev), or a nic's by
 * MAC. 0, -ENOENT, -EINVAL. */
int shim_ts_disk_find(struct shim_ts *ts, unsigned int domid, const char *vdev,
		      unsigned int *devid);
int shim_ts_nic_find(struct shim_ts *ts, unsigned int domid, const char *mac,
		     unsigned int *devid);

/* xl list + block-list + network-list: every domain and its devices with frontend and
 * backend states, one line each, to out. 0 or -errno. */
int shim_ts_list(struct shim_ts *ts, FILE *out);

/* The libxenstore handle (dom0). Owned by ts. */
struct xs_handle *shim_ts_xs(struct shim_ts *ts);

#endif
