/*
 * evt_storm — notification-storm back-off for an event channel served by a libev
 * watcher (the idea of Linux's lateeoi): after EVT_STORM_MAX notifications in a row that
 * brought no work, stop reading the channel for EVT_STORM_PAUSE_S; what the frontend
 * sends meanwhile coalesces into one event, read when the watcher starts again. A
 * hostile frontend then costs a few percent of a core instead of one.
 * Used by the blkif queues and the netif queues and ctrl ring. Single-threaded: the
 * device's loop.
 */
#ifndef SPLITPV_XENBUS_EVT_STORM_H
#define SPLITPV_XENBUS_EVT_STORM_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#define EVT_STORM_MAX 16u
#define EVT_STORM_PAUSE_S 0.001

struct evt_storm {
	ev_io *io;                      /* the channel's watcher, stopped during a pause */
	ev_timer pause;
	unsigned int spurious;          /* notifications in a row without work */
	void (*resumed)(void *opaque);  /* after a pause (may be NULL) */
	void *opaque;
	uint64_t *pauses;               /* counts the pauses (may be NULL) */
};

void evt_storm_init(struct evt_storm *s, ev_io *io, void (*resumed)(void *opaque),
		    void *opaque, uint64_t *pauses);
/* After serving a notification: progress = it brought work (requests taken). */
void evt_storm_note(struct evt_storm *s, struct ev_loop *loop, bool progress);
/* Cancel a pause (the channel is going away). The watcher is the caller's to stop. */
void evt_storm_stop(struct evt_storm *s, struct ev_loop *loop);

#endif
