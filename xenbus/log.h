/*
 * log — one-line diagnostics with the device in every line, to stderr (journald picks
 * it up under systemd) or syslog. Guest-triggered messages go through a rate limit so a
 * hostile guest can't flood the log.
 */
#ifndef SPLITPV_XENBUS_LOG_H
#define SPLITPV_XENBUS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Route to syslog (ident = program name) instead of stderr. Call once at start-up. */
void log_use_syslog(const char *ident);
/* Messages above this priority (LOG_DEBUG > LOG_INFO > ...) are dropped. Default LOG_INFO;
 * SPLITPV_LOG=debug in the environment raises it. */
void log_set_level(int prio);

void log_msg(int prio, const char *who, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Token bucket: burst messages, then at most one per interval_ms. Caller allocates. */
struct log_ratelimit {
	uint64_t last_ms;
	unsigned int tokens;
	unsigned int burst;
	unsigned int interval_ms;
	unsigned long suppressed;
};
#define LOG_RATELIMIT_INIT { 0, 10, 10, 1000, 0 }
bool log_ratelimit_ok(struct log_ratelimit *rl);

#define log_err(who, ...) log_msg(LOG_ERR, who, __VA_ARGS__)
#define log_warn(who, ...) log_msg(LOG_WARNING, who, __VA_ARGS__)
#define log_info(who, ...) log_msg(LOG_INFO, who, __VA_ARGS__)
#define log_debug(who, ...) log_msg(LOG_DEBUG, who, __VA_ARGS__)
/* For messages a guest can cause: rate-limited per call site. */
#define log_guest(who, ...)                                                            \
	do {                                                                           \
		static struct log_ratelimit rl_ = LOG_RATELIMIT_INIT;                  \
		if (log_ratelimit_ok(&rl_))                                            \
			log_msg(LOG_WARNING, who, __VA_ARGS__);                        \
	} while (0)

#endif
