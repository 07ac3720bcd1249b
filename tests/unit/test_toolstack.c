/*
 * Unit tests for the pure parts of frontend-shim/toolstack.c: the xl disk-spec and
 * nic-spec parsers, vdev -> devid (xen-vbd-interface.7), MAC generation, vif rate
 * parsing, and the libxl timeouts the toolstack defaults to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frontend-shim/toolstack.h"
#include "tests/unit/unit.h"

static unsigned int devid_of(const char *vdev)
{
	unsigned int d = 0xdeadbeef;

	CU_ASSERT_EQUAL_FATAL(shim_vdev_to_devid(vdev, &d), 0);
	return d;
}

static void vdev_xvd_encodes_202_disk_part(void)
{
	CU_ASSERT_EQUAL(devid_of("xvda"), 51712u);
	CU_ASSERT_EQUAL(devid_of("xvdb"), 51728u);
	CU_ASSERT_EQUAL(devid_of("xvda1"), 51713u);
	CU_ASSERT_EQUAL(devid_of("xvdp15"), (202u << 8) | (15u << 4) | 15u);
	CU_ASSERT_EQUAL(devid_of("d0p0"), 51712u);
	CU_ASSERT_EQUAL(devid_of("d1p2"), (202u << 8) | (1u << 4) | 2u);
}

static void vdev_sixteenth_disk_uses_extended_form(void)
{
	/* disk >= 16 or partition >= 16: 1<<28 | disk<<8 | part */
	CU_ASSERT_EQUAL(devid_of("xvdq"), (1u << 28) | (16u << 8));
	CU_ASSERT_EQUAL(devid_of("xvda16"), (1u << 28) | 16u);
	CU_ASSERT_EQUAL(devid_of("xvdz"), (1u << 28) | (25u << 8));
	/* bijective base 26: aa = 26, ba = 52 */
	CU_ASSERT_EQUAL(devid_of("xvdaa"), (1u << 28) | (26u << 8));
	CU_ASSERT_EQUAL(devid_of("xvdba3"), (1u << 28) | (52u << 8) | 3u);
	CU_ASSERT_EQUAL(devid_of("d16p1"), (1u << 28) | (16u << 8) | 1u);
}

static void vdev_hd_sd_and_numbers_follow_libxl(void)
{
	CU_ASSERT_EQUAL(devid_of("hda"), 3u << 8);
	CU_ASSERT_EQUAL(devid_of("hdb"), (3u << 8) | (1u << 6));
	CU_ASSERT_EQUAL(devid_of("hdc"), 22u << 8);
	CU_ASSERT_EQUAL(devid_of("hdd2"), (22u << 8) | (1u << 6) | 2u);
	CU_ASSERT_EQUAL(devid_of("sda"), 8u << 8);
	CU_ASSERT_EQUAL(devid_of("sdb1"), (8u << 8) | (1u << 4) | 1u);
	CU_ASSERT_EQUAL(devid_of("51712"), 51712u);
	CU_ASSERT_EQUAL(devid_of("0x10"), 16u); /* strtoul base 0, as libxl */
}

static void vdev_rejects_malformed_names(void)
{
	static const char *const bad[] = { "", "xvd", "xvda0", "xvdA", "xvda256", "hde",
					   "sdq", "sda16", "foo", "d1", "d1p", "dxp1",
					   "xvda-1", "99999999999", "d1048576p0" };
	unsigned int d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(shim_vdev_to_devid(bad[i], &d), -EINVAL);
}

static void disk_spec_parses_every_key(void)
{
	struct shim_disk_spec d;
	char err[128];

	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse("vdev=xvdb,access=ro,devtype=disk,"
						   "backendtype=phy,script=/s/blk,backend=3,"
						   "no-discard,direct-io-safe,untrusted,"
						   "format=raw,specification=xen,"
						   "target=/a,b/c.img",
						   &d, err, sizeof(err)),
			      0);
	CU_ASSERT_STRING_EQUAL(d.vdev, "xvdb");
	CU_ASSERT_STRING_EQUAL(d.target, "/a,b/c.img"); /* target= eats the rest */
	CU_ASSERT_STRING_EQUAL(d.script, "/s/blk");
	CU_ASSERT_STRING_EQUAL(d.backend, "3");
	CU_ASSERT_FALSE(d.readwrite);
	CU_ASSERT_FALSE(d.is_cdrom);
	CU_ASSERT_EQUAL(d.backendtype, SHIM_DISK_BACKEND_PHY);
	CU_ASSERT_EQUAL(d.format, SHIM_DISK_FORMAT_RAW);
	CU_ASSERT_EQUAL(d.discard, 0);
	CU_ASSERT_EQUAL(d.trusted, 0);
	CU_ASSERT_TRUE(d.direct_io_safe);
}

static void disk_spec_defaults_match_xlu(void)
{
	struct shim_disk_spec d;

	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse("vdev=xvda,target=/x", &d, NULL, 0), 0);
	CU_ASSERT_TRUE(d.readwrite);
	CU_ASSERT_EQUAL(d.format, SHIM_DISK_FORMAT_RAW);
	CU_ASSERT_EQUAL(d.backendtype, SHIM_DISK_BACKEND_UNKNOWN);
	CU_ASSERT_EQUAL(d.discard, -1);
	CU_ASSERT_EQUAL(d.trusted, -1);
	CU_ASSERT_FALSE(d.removable);

	/* a cdrom is removable and read-only; without a target its format is empty */
	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse("vdev=hdc,devtype=cdrom,access=rw", &d,
						   NULL, 0),
			      0);
	CU_ASSERT_TRUE(d.is_cdrom);
	CU_ASSERT_TRUE(d.removable);
	CU_ASSERT_FALSE(d.readwrite);
	CU_ASSERT_EQUAL(d.format, SHIM_DISK_FORMAT_EMPTY);
}

static void disk_spec_positional_form_is_target_format_vdev_access(void)
{
	struct shim_disk_spec d;

	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse("/img,qcow2,xvdc,r", &d, NULL, 0), 0);
	CU_ASSERT_STRING_EQUAL(d.target, "/img");
	CU_ASSERT_EQUAL(d.format, SHIM_DISK_FORMAT_QCOW2);
	CU_ASSERT_STRING_EQUAL(d.vdev, "xvdc");
	CU_ASSERT_FALSE(d.readwrite);

	/* deprecated prefix: no format position */
	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse("phy:/dev/sdb,xvdd,w", &d, NULL, 0), 0);
	CU_ASSERT_STRING_EQUAL(d.target, "/dev/sdb");
	CU_ASSERT_STRING_EQUAL(d.vdev, "xvdd");
	CU_ASSERT_TRUE(d.readwrite);

	/* empty target, vdev:cdrom */
	CU_ASSERT_EQUAL_FATAL(shim_disk_spec_parse(",,hdc:cdrom,r", &d, NULL, 0), 0);
	CU_ASSERT_TRUE(d.is_cdrom);
	CU_ASSERT_STRING_EQUAL(d.vdev, "hdc");
}

static void disk_spec_rejects_bad_input(void)
{
	static const char *const bad[] = {
		"target=/x,vdev=xvda",              /* target= ate the vdev, as in xl */
		"target=/x",                        /* no vdev */
		"vdev=xvda",                        /* no target, not removable */
		"vdev=xvda,colour=red,target=/x",   /* unknown key */
		"vdev=xvda,access=rx,target=/x",    /* bad access */
		"vdev=xvda,devtype=tape,target=/x", /* bad devtype */
		"vdev=xvda,backendtype=tap,target=/x",
		"vdev=xvda,backendtype=phy,backendtype=qdisk,target=/x",
		"vdev=xvda,vdev=xvdb,target=/x",    /* respecified */
		"vdev=xvda,format=vmdk,target=/x",
		"/x,raw,xvda,w,extra",              /* too many positionals */
		"vdev=xvda,specification=virtio,target=/x",
	};
	struct shim_disk_spec d;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CU_ASSERT_EQUAL(shim_disk_spec_parse(bad[i], &d, err, sizeof(err)), -EINVAL);
		CU_ASSERT_STRING_NOT_EQUAL(err, "ok");
	}
}

static void disk_spec_refuses_overlong_target(void)
{
	size_t n = SHIM_TS_STR_MAX + 100;
	char *s = malloc(n + 32), err[64];
	struct shim_disk_spec d;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	strcpy(s, "vdev=xvda,target=/");
	memset(s + strlen(s), 'a', n);
	s[18 + n] = '\0';
	CU_ASSERT_EQUAL(shim_disk_spec_parse(s, &d, err, sizeof(err)), -ENAMETOOLONG);
	free(s);
}

static void mac_generate_uses_xen_oui_and_clears_multicast(void)
{
	for (int i = 0; i < 64; i++) {
		uint8_t mac[6], back[6];
		char s[18];

		CU_ASSERT_EQUAL_FATAL(shim_mac_generate(mac), 0);
		CU_ASSERT_EQUAL(mac[0], 0x00);
		CU_ASSERT_EQUAL(mac[1], 0x16);
		CU_ASSERT_EQUAL(mac[2], 0x3e);
		CU_ASSERT_EQUAL(mac[3] & 0x80, 0); /* libxl: r[0] & 0x7f */
		shim_mac_format(mac, s);
		CU_ASSERT_EQUAL(strlen(s), 17u);
		CU_ASSERT_EQUAL(strncmp(s, "00:16:3e:", 9), 0);
		for (int k = 0; k < 17; k++)
			CU_ASSERT_TRUE(k % 3 == 2 ? s[k] == ':' :
						    (s[k] >= '0' && s[k] <= '9') ||
							    (s[k] >= 'a' && s[k] <= 'f'));
		CU_ASSERT_EQUAL(shim_mac_parse(s, back), 0);
		CU_ASSERT_EQUAL(memcmp(mac, back, 6), 0);
	}
}

static void mac_parse_is_strict(void)
{
	uint8_t m[6];

	CU_ASSERT_EQUAL(shim_mac_parse("00:16:3E:0a:Bb:ff", m), 0);
	CU_ASSERT_EQUAL(m[2], 0x3e);
	CU_ASSERT_EQUAL(m[4], 0xbb);
	CU_ASSERT_EQUAL(shim_mac_parse("00:16:3e:0a:bb", m), -EINVAL);
	CU_ASSERT_EQUAL(shim_mac_parse("00:16:3e:0a:bb:fg", m), -EINVAL);
	CU_ASSERT_EQUAL(shim_mac_parse("00-16-3e-0a-bb-ff", m), -EINVAL);
	CU_ASSERT_EQUAL(shim_mac_parse("00:16:3e:0a:bb:ff:", m), -EINVAL);
}

static void rate_parse_follows_xlu_vif(void)
{
	uint64_t b;
	uint32_t us;

	CU_ASSERT_EQUAL(shim_nic_rate_parse("10Mb/s", &b, &us), 0);
	CU_ASSERT_EQUAL(us, 50000u); /* default interval 50 ms */
	CU_ASSERT_EQUAL(b, 10000000ull / 8 * 50000 / 1000000);
	CU_ASSERT_EQUAL(shim_nic_rate_parse("100MB/s@20ms", &b, &us), 0);
	CU_ASSERT_EQUAL(us, 20000u);
	CU_ASSERT_EQUAL(b, 2000000u);
	CU_ASSERT_EQUAL(shim_nic_rate_parse("1KB/s@1s", &b, &us), 0);
	CU_ASSERT_EQUAL(us, 1000000u);
	CU_ASSERT_EQUAL(b, 1000u);
	CU_ASSERT_EQUAL(shim_nic_rate_parse("8b/s@250us", &b, &us), 0);
	CU_ASSERT_EQUAL(us, 250u);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("10Mb", &b, &us), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("0Mb/s", &b, &us), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("10Mb/s@0ms", &b, &us), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("10Tb/s", &b, &us), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("@10ms", &b, &us), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_rate_parse("5000000000B/s", &b, &us), 0);
}

static void nic_spec_parses_keys_and_refuses_unknown(void)
{
	struct shim_nic_spec n;
	char err[128];

	CU_ASSERT_EQUAL_FATAL(shim_nic_spec_parse("mac=00:16:3e:01:02:03,bridge=br1,"
						  "ip=10.0.0.2,rate=1MB/s,mtu=9000,"
						  "vifname=guestnic,script=vif-x,devid=4,"
						  "type=vif,gatewaydev=eth0",
						  &n, err, sizeof(err)),
			      0);
	CU_ASSERT_TRUE(n.mac_set);
	CU_ASSERT_EQUAL(n.mac[5], 0x03);
	CU_ASSERT_STRING_EQUAL(n.bridge, "br1");
	CU_ASSERT_STRING_EQUAL(n.ip, "10.0.0.2");
	CU_ASSERT_EQUAL(n.mtu, 9000u);
	CU_ASSERT_EQUAL(n.devid, 4);
	CU_ASSERT_STRING_EQUAL(n.vifname, "guestnic");
	CU_ASSERT_STRING_EQUAL(n.gatewaydev, "eth0");
	CU_ASSERT_EQUAL(n.rate_interval_usecs, 50000u);
	CU_ASSERT_EQUAL(n.rate_bytes_per_interval, 50000u);

	CU_ASSERT_EQUAL(shim_nic_spec_parse("", &n, NULL, 0), 0);
	CU_ASSERT_FALSE(n.mac_set);
	CU_ASSERT_EQUAL(n.devid, -1);
	CU_ASSERT_EQUAL(n.mtu, 0u);

	CU_ASSERT_EQUAL(shim_nic_spec_parse("model=e1000", &n, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(shim_nic_spec_parse("type=ioemu", &n, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(shim_nic_spec_parse("mac=00:16:3e", &n, err, sizeof(err)), -EINVAL);
	CU_ASSERT_NOT_EQUAL(shim_nic_spec_parse("mtu=70000", &n, err, sizeof(err)), 0);
	CU_ASSERT_NOT_EQUAL(shim_nic_spec_parse("bridge", &n, err, sizeof(err)), 0);
}

static void timeouts_default_to_libxl_values(void)
{
	struct shim_ts_config c;

	/* the constants are libxl's: LIBXL_INIT_TIMEOUT 10, _DESTROY_ 10, _HOTPLUG_ 40 s */
	CU_ASSERT_EQUAL(SHIM_TS_INIT_TIMEOUT_MS, 10000u);
	CU_ASSERT_EQUAL(SHIM_TS_DESTROY_TIMEOUT_MS, 10000u);
	CU_ASSERT_EQUAL(SHIM_TS_HOTPLUG_TIMEOUT_MS, 40000u);

	unsetenv(SHIM_TS_ENV_INIT_TIMEOUT);
	unsetenv(SHIM_TS_ENV_DESTROY_TIMEOUT);
	unsetenv(SHIM_TS_ENV_HOTPLUG_TIMEOUT);
	CU_ASSERT_EQUAL_FATAL(shim_ts_config_from_env(&c), 0);
	CU_ASSERT_EQUAL(c.init_timeout_ms, 10000u);
	CU_ASSERT_EQUAL(c.destroy_timeout_ms, 10000u);
	CU_ASSERT_EQUAL(c.hotplug_timeout_ms, 40000u);

	setenv(SHIM_TS_ENV_INIT_TIMEOUT, "1000", 1);
	CU_ASSERT_EQUAL_FATAL(shim_ts_config_from_env(&c), 0);
	CU_ASSERT_EQUAL(c.init_timeout_ms, 1000u);
	CU_ASSERT_EQUAL(c.destroy_timeout_ms, 10000u);
	setenv(SHIM_TS_ENV_INIT_TIMEOUT, "1s", 1);
	CU_ASSERT_EQUAL(shim_ts_config_from_env(&c), -EINVAL);
	setenv(SHIM_TS_ENV_INIT_TIMEOUT, "0", 1);
	CU_ASSERT_EQUAL(shim_ts_config_from_env(&c), -EINVAL);
	unsetenv(SHIM_TS_ENV_INIT_TIMEOUT);
}

static const struct unit_test tests[] = {
	{ "vdev_xvd_encodes_202_disk_part", vdev_xvd_encodes_202_disk_part },
	{ "vdev_sixteenth_disk_uses_extended_form", vdev_sixteenth_disk_uses_extended_form },
	{ "vdev_hd_sd_and_numbers_follow_libxl", vdev_hd_sd_and_numbers_follow_libxl },
	{ "vdev_rejects_malformed_names", vdev_rejects_malformed_names },
	{ "disk_spec_parses_every_key", disk_spec_parses_every_key },
	{ "disk_spec_defaults_match_xlu", disk_spec_defaults_match_xlu },
	{ "disk_spec_positional_form_is_target_format_vdev_access",
	  disk_spec_positional_form_is_target_format_vdev_access },
	{ "disk_spec_rejects_bad_input", disk_spec_rejects_bad_input },
	{ "disk_spec_refuses_overlong_target", disk_spec_refuses_overlong_target },
	{ "mac_generate_uses_xen_oui_and_clears_multicast",
	  mac_generate_uses_xen_oui_and_clears_multicast },
	{ "mac_parse_is_strict", mac_parse_is_strict },
	{ "rate_parse_follows_xlu_vif", rate_parse_follows_xlu_vif },
	{ "nic_spec_parses_keys_and_refuses_unknown", nic_spec_parses_keys_and_refuses_unknown },
	{ "timeouts_default_to_libxl_values", timeouts_default_to_libxl_values },
	{ NULL, NULL },
};

UNIT_SUITE(toolstack, tests)
