/*
 * journal — the crash journal of one backend device, in a memfd the supervisor creates
 * and keeps open across worker restarts (the worker inherits and mmaps it). Per queue it
 * holds the ring position (requests taken, responses published) and a private copy of
 * every request taken whose response is not yet published, so a restarted worker can
 * re-attach to the live rings and finish what its predecessor had in flight. It also
 * carries a stats snapshot the supervisor reads for `splitpv stats`, and a small device
 * blob: state the frontend set up through the rings and would not repeat (the netif
 * hash configuration and multicast list), written by the device thread.
 * Counterpart: the in-flight shadow Linux blkfront keeps for resume (xen-blkfront.c).
 *
 * Crash consistency: one thread writes a queue's part; every store that publishes
 * something (an entry's state, req_cons, rsp_prod) is a release store made after the
 * data it covers, so a worker killed between any two instructions leaves a journal that
 * xenbus_journal_recover() reads correctly. The journal is our own memory, never the
 * guest's; the recovering worker still range-checks it.
 * Threading: a queue's records belong to the device thread; the stats area is a seqlock
 * (one writer, any number of readers in other processes). The blob is double-buffered:
 * the copy not in use is written, then blob_gen is bumped (release), so a worker killed
 * mid-write leaves the previous blob in force.
 */
#ifndef SPLITPV_XENBUS_JOURNAL_H
#define SPLITPV_XENBUS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XENBUS_JOURNAL_MAGIC 0x4c4e524a56505353ull /* "SSPVJRNL" */
#define XENBUS_JOURNAL_VERSION 2u      /* 2: device blob */
#define XENBUS_JOURNAL_PAYLOAD 120u   /* bytes of request kept per entry (blkif: 112) */
#define XENBUS_JOURNAL_STATS 1024u    /* bytes of stats snapshot */
#define XENBUS_JOURNAL_BLOB 2048u     /* bytes of device blob */
#define XENBUS_JOURNAL_MAX_QUEUES 64u
#define XENBUS_JOURNAL_MAX_ENTS 4096u /* per queue */

enum xenbus_journal_ent_state {
	XENBUS_JOURNAL_FREE = 0,
	XENBUS_JOURNAL_TAKEN = 1,     /* copied out of the ring, no response yet */
	XENBUS_JOURNAL_RESPONDED = 2, /* response written at rsp_idx, maybe not published */
};

struct xenbus_journal_ent {
	uint32_t state;               /* enum xenbus_journal_ent_state; written last */
	uint32_t req_idx;             /* ring index the request was taken from */
	uint32_t rsp_idx;             /* ring index of its response (RESPONDED) */
	uint32_t len;                 /* bytes of payload used */
	uint8_t payload[XENBUS_JOURNAL_PAYLOAD]; /* the request as copied out (guest layout) */
};

struct xenbus_journal_queue {
	uint32_t req_cons;            /* requests taken (entries below it are journaled) */
	uint32_t rsp_prod;            /* responses published (set before publishing) */
	uint32_t nr_ents;             /* entries in this queue's table */
	uint32_t pad;
};

struct xenbus_journal_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t active;              /* 1 while the device is connected */
	uint32_t nr_queues;
	uint32_t nr_ents;             /* per queue */
	uint32_t generation;          /* bumped at every (re)connect and every resume */
	uint32_t restarts;            /* resumes after a worker died */
	uint32_t stats_seq;           /* seqlock: odd while the snapshot is being written */
	uint32_t stats_len;
	uint8_t stats[XENBUS_JOURNAL_STATS];
	uint32_t blob_gen;            /* blobs written this connection; blob[gen & 1] is current */
	uint32_t blob_len[2];
	uint32_t pad;
	uint8_t blob[2][XENBUS_JOURNAL_BLOB];
	/* then nr_queues struct xenbus_journal_queue, then nr_queues * nr_ents entries */
};

/* A mapping of a journal memfd; caller allocates (zero it, or xenbus_journal_init). */
struct xenbus_journal {
	int fd;                       /* not owned: the supervisor's, inherited */
	struct xenbus_journal_hdr *hdr; /* NULL while unmapped or empty */
	size_t size;
};

void xenbus_journal_init(struct xenbus_journal *j, int fd);

/* Map what the fd holds now (maybe nothing: hdr stays NULL). 0 or -errno. */
int xenbus_journal_map(struct xenbus_journal *j);
void xenbus_journal_unmap(struct xenbus_journal *j);

/* Bytes a journal of that shape needs. */
size_t xenbus_journal_bytes(unsigned int nr_queues, unsigned int nr_ents);

/*
 * Start a fresh connection: inactive first, resize, zero every queue, set the shape.
 * The caller marks it active (xenbus_journal_set_active) once connected. Stats survive.
 * -EINVAL for a shape out of range, -errno from ftruncate/mmap.
 */
int xenbus_journal_format(struct xenbus_journal *j, unsigned int nr_queues,
			  unsigned int nr_ents);
void xenbus_journal_set_active(struct xenbus_journal *j, bool active);

/* True if the journal is active, well-formed and of exactly this shape. */
bool xenbus_journal_matches(const struct xenbus_journal *j, unsigned int nr_queues,
			    unsigned int nr_ents);

struct xenbus_journal_queue *xenbus_journal_queue(struct xenbus_journal *j, unsigned int q);
struct xenbus_journal_ent *xenbus_journal_ent(struct xenbus_journal *j, unsigned int q,
					      unsigned int i);

/* ---- writer side, in this order for each request (see the crash note above) ---- */
/* Copy the request in, then publish the entry as TAKEN. len <= XENBUS_JOURNAL_PAYLOAD. */
void xenbus_journal_ent_take(struct xenbus_journal_ent *e, uint32_t req_idx, const void *req,
			     size_t len);
/* After taking a batch: everything below req_cons is journaled. */
void xenbus_journal_set_req_cons(struct xenbus_journal_queue *jq, uint32_t req_cons);
/* After writing its response into the ring at rsp_idx. */
void xenbus_journal_ent_responded(struct xenbus_journal_ent *e, uint32_t rsp_idx);
/* Before publishing rsp_prod on the ring. */
void xenbus_journal_set_rsp_prod(struct xenbus_journal_queue *jq, uint32_t rsp_prod);
/* After publishing: the entry's response is out. */
void xenbus_journal_ent_free(struct xenbus_journal_ent *e);

/*
 * Recovery after a crash, for queue q: fix the table up so that exactly the requests
 * whose responses were not published stay (entries taken past req_cons are dropped —
 * they are still in the ring and will be taken again; responded entries below rsp_prod
 * are done), write their entry indices into redo[] in request order (redo has room for
 * nr_ents), and return how many. -EPROTO if the queue record is impossible
 * (rsp_prod past req_cons, more outstanding than entries).
 */
int xenbus_journal_recover(struct xenbus_journal *j, unsigned int q, unsigned int *redo);

/* ---- device blob (reset by xenbus_journal_format) ---- */
/* Make data the current blob; -EMSGSIZE if len > XENBUS_JOURNAL_BLOB, -EINVAL if unmapped.
 * Call before publishing a response whose effect the blob records. */
int xenbus_journal_blob_write(struct xenbus_journal *j, const void *data, size_t len);
/* Copy the current blob (at most len bytes); its length, 0 if none, or -EPROTO if the
 * journal's record of it is impossible. */
int xenbus_journal_blob_read(const struct xenbus_journal *j, void *out, size_t len);

/* ---- stats snapshot (seqlock) ---- */
void xenbus_journal_stats_write(struct xenbus_journal *j, const void *stats, size_t len);
/* Copy a consistent snapshot; returns its length (0 if none) or -EAGAIN after retries. */
int xenbus_journal_stats_read(const struct xenbus_journal *j, void *out, size_t len);

#endif
