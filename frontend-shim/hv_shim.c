/* Placeholder until the shim hypervisor lands (being written now): every op fails. */
#include "xenbus/hv.h"

#include <errno.h>

static int nosys_open(struct hv_gnt **out)
{
	(void)out;
	return -ENOSYS;
}

static int nosys_evt_open(struct hv_evt **out)
{
	(void)out;
	return -ENOSYS;
}

const struct hv_ops hv_shim_ops = {
	.name = "shim",
	.gnt_open = nosys_open,
	.evt_open = nosys_evt_open,
};
