/*
 * supervisor — the client side of splitpvd's control socket (see supervisor.h).
 */
#include "xenbus/supervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int xenbus_supervisor_socket_path(char *out, size_t len)
{
	const char *env = getenv("SPLITPV_SOCKET"), *shim = getenv("SPLITPV_SHIM");
	int n;

	if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (shim && *shim)
		n = snprintf(out, len, "%s/splitpvd.sock", shim);
	else
		n = snprintf(out, len, "/run/splitpv/splitpvd.sock");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int xenbus_supervisor_request(const char *path, const char *cmd, FILE *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];
	ssize_t n;
	int fd, rc = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    dprintf(fd, "%s\n", cmd) < 0) {
		rc = -errno;
		goto out;
	}
	shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, out);
	if (n < 0)
		rc = -errno;
out:
	close(fd);
	return rc;
}
