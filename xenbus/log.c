/* log — see log.h. Thread-safe: each line is one write. */
#include "xenbus/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool use_syslog;
static int max_prio = -1;

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

void log_set_level(int prio)
{
	max_prio = prio;
}

static int level(void)
{
	if (max_prio < 0) {
		const char *e = getenv("SPLITPV_LOG");

		max_prio = (e && strcmp(e, "debug") == 0) ? LOG_DEBUG : LOG_INFO;
	}
	return max_prio;
}

void log_msg(int prio, const char *who, const char *fmt, ...)
{
	static const char *const tag[] = { "emerg", "alert", "crit", "error",
					   "warning", "notice", "info", "debug" };
	char line[1024];
	int n;
	va_list ap;

	if (prio > level())
		return;
	n = snprintf(line, sizeof(line), "%s%s", who ? who : "", who ? ": " : "");
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (use_syslog) {
		syslog(prio, "%s", line);
	} else {
		char out[1100];
		int m = snprintf(out, sizeof(out), "splitpv[%d] %s: %s\n", (int)getpid(),
				 tag[prio & 7], line);

		if (m > 0 && write(STDERR_FILENO, out, (size_t)m < sizeof(out) ? (size_t)m : sizeof(out) - 1) < 0)
			return;
	}
}

bool log_ratelimit_ok(struct log_ratelimit *rl)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (now - rl->last_ms >= rl->interval_ms) {
		unsigned int refill = (unsigned int)((now - rl->last_ms) / rl->interval_ms);

		rl->tokens = rl->tokens + refill > rl->burst ? rl->burst : rl->tokens + refill;
		rl->last_ms = now;
	}
	if (rl->tokens == 0) {
		rl->suppressed++;
		return false;
	}
	rl->tokens--;
	return true;
}
