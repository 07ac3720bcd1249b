/*
 * evt_storm — see evt_storm.h.
 */
#include "xenbus/evt_storm.h"

static void pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct evt_storm *s = w->data;

	(void)revents;
	ev_io_start(loop, s->io);
	if (s->resumed)
		s->resumed(s->opaque);
}

void evt_storm_init(struct evt_storm *s, ev_io *io, void (*resumed)(void *opaque),
		    void *opaque, uint64_t *pauses)
{
	s->pauses = pauses;
	s->io = io;
	s->spurious = 0;
	s->resumed = resumed;
	s->opaque = opaque;
	ev_timer_init(&s->pause, pause_cb, 0, 0);
	s->pause.data = s;
}

void evt_storm_note(struct evt_storm *s, struct ev_loop *loop, bool progress)
{
	if (progress) {
		s->spurious = 0;
		return;
	}
	if (++s->spurious < EVT_STORM_MAX)
		return;
	/* A frontend notifying with nothing to do: stop listening for a moment instead of
	 * spending a core on it (the other guests' CPU). */
	s->spurious = 0;
	if (s->pauses)
		(*s->pauses)++;
	ev_io_stop(loop, s->io);
	ev_timer_stop(loop, &s->pause);
	ev_timer_set(&s->pause, EVT_STORM_PAUSE_S, 0);
	ev_timer_start(loop, &s->pause);
}

void evt_storm_stop(struct evt_storm *s, struct ev_loop *loop)
{
	ev_timer_stop(loop, &s->pause);
	s->spurious = 0;
}
