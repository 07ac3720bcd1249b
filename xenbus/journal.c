/*
 * journal — crash journal of one backend device in a supervisor-held memfd (see
 * journal.h for the layout and the crash-consistency rules).
 */
#include "xenbus/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

void xenbus_journal_init(struct xenbus_journal *j, int fd)
{
	j->fd = fd;
	j->hdr = NULL;
	j->size = 0;
}

void xenbus_journal_unmap(struct xenbus_journal *j)
{
	if (j->hdr)
		munmap(j->hdr, j->size);
	j->hdr = NULL;
	j->size = 0;
}

int xenbus_journal_map(struct xenbus_journal *j)
{
	struct stat st;
	void *p;

	xenbus_journal_unmap(j);
	if (j->fd < 0)
		return -EBADF;
	if (fstat(j->fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size < sizeof(struct xenbus_journal_hdr))
		return 0; /* empty: a fresh device */
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	j->hdr = p;
	j->size = (size_t)st.st_size;
	return 0;
}

size_t xenbus_journal_bytes(unsigned int nr_queues, unsigned int nr_ents)
{
	return sizeof(struct xenbus_journal_hdr) +
	       (size_t)nr_queues * sizeof(struct xenbus_journal_queue) +
	       (size_t)nr_queues * nr_ents * sizeof(struct xenbus_journal_ent);
}

int xenbus_journal_format(struct xenbus_journal *j, unsigned int nr_queues,
			  unsigned int nr_ents)
{
	size_t bytes = xenbus_journal_bytes(nr_queues, nr_ents);
	uint8_t stats[XENBUS_JOURNAL_STATS];
	uint32_t stats_len = 0, restarts = 0, gen = 0;
	int rc;

	if (nr_queues < 1 || nr_queues > XENBUS_JOURNAL_MAX_QUEUES || nr_ents < 1 ||
	    nr_ents > XENBUS_JOURNAL_MAX_ENTS)
		return -EINVAL;
	if (j->hdr && j->hdr->magic == XENBUS_JOURNAL_MAGIC) {
		/* Nothing of the old connection may look live while we reshape. */
		STORE_REL(&j->hdr->active, 0);
		stats_len = j->hdr->stats_len <= XENBUS_JOURNAL_STATS ? j->hdr->stats_len : 0;
		memcpy(stats, j->hdr->stats, stats_len);
		restarts = j->hdr->restarts;
		gen = j->hdr->generation;
	}
	if (j->size != bytes) {
		xenbus_journal_unmap(j);
		if (ftruncate(j->fd, (off_t)bytes) < 0)
			return -errno;
		rc = xenbus_journal_map(j);
		if (rc)
			return rc;
		if (!j->hdr)
			return -EIO;
	}
	memset(j->hdr, 0, bytes);
	j->hdr->version = XENBUS_JOURNAL_VERSION;
	j->hdr->nr_queues = nr_queues;
	j->hdr->nr_ents = nr_ents;
	j->hdr->restarts = restarts;
	j->hdr->generation = gen + 1;
	j->hdr->stats_len = stats_len;
	memcpy(j->hdr->stats, stats, stats_len);
	STORE_REL(&j->hdr->magic, XENBUS_JOURNAL_MAGIC);
	return 0;
}

void xenbus_journal_set_active(struct xenbus_journal *j, bool active)
{
	if (j->hdr)
		STORE_REL(&j->hdr->active, active ? 1u : 0u);
}

bool xenbus_journal_matches(const struct xenbus_journal *j, unsigned int nr_queues,
			    unsigned int nr_ents)
{
	const struct xenbus_journal_hdr *h = j->hdr;

	return h && j->size >= sizeof(*h) && h->magic == XENBUS_JOURNAL_MAGIC &&
	       h->version == XENBUS_JOURNAL_VERSION && LOAD_ACQ(&h->active) == 1 &&
	       h->nr_queues == nr_queues && h->nr_ents == nr_ents &&
	       j->size >= xenbus_journal_bytes(nr_queues, nr_ents);
}

struct xenbus_journal_queue *xenbus_journal_queue(struct xenbus_journal *j, unsigned int q)
{
	struct xenbus_journal_queue *qs = (void *)(j->hdr + 1);

	return &qs[q];
}

struct xenbus_journal_ent *xenbus_journal_ent(struct xenbus_journal *j, unsigned int q,
					      unsigned int i)
{
	struct xenbus_journal_queue *qs = (void *)(j->hdr + 1);
	struct xenbus_journal_ent *es = (void *)(qs + j->hdr->nr_queues);

	return &es[(size_t)q * j->hdr->nr_ents + i];
}

void xenbus_journal_ent_take(struct xenbus_journal_ent *e, uint32_t req_idx, const void *req,
			     size_t len)
{
	if (len > XENBUS_JOURNAL_PAYLOAD)
		len = XENBUS_JOURNAL_PAYLOAD;
	memcpy(e->payload, req, len);
	e->len = (uint32_t)len;
	e->req_idx = req_idx;
	e->rsp_idx = 0;
	STORE_REL(&e->state, (uint32_t)XENBUS_JOURNAL_TAKEN); /* valid only once complete */
}

void xenbus_journal_set_req_cons(struct xenbus_journal_queue *jq, uint32_t req_cons)
{
	STORE_REL(&jq->req_cons, req_cons);
}

void xenbus_journal_ent_responded(struct xenbus_journal_ent *e, uint32_t rsp_idx)
{
	e->rsp_idx = rsp_idx;
	STORE_REL(&e->state, (uint32_t)XENBUS_JOURNAL_RESPONDED);
}

void xenbus_journal_set_rsp_prod(struct xenbus_journal_queue *jq, uint32_t rsp_prod)
{
	STORE_REL(&jq->rsp_prod, rsp_prod);
}

void xenbus_journal_ent_free(struct xenbus_journal_ent *e)
{
	STORE_REL(&e->state, (uint32_t)XENBUS_JOURNAL_FREE);
}

static int by_req_idx(const void *a, const void *b, void *arg)
{
	struct xenbus_journal *j = ((void **)arg)[0];
	unsigned int q = *(unsigned int *)((void **)arg)[1];
	uint32_t base = xenbus_journal_queue(j, q)->req_cons;
	uint32_t ka = base - xenbus_journal_ent(j, q, *(const unsigned int *)a)->req_idx;
	uint32_t kb = base - xenbus_journal_ent(j, q, *(const unsigned int *)b)->req_idx;

	/* Oldest (furthest below req_cons) first. */
	return ka > kb ? -1 : ka < kb ? 1 : 0;
}

int xenbus_journal_recover(struct xenbus_journal *j, unsigned int q, unsigned int *redo)
{
	struct xenbus_journal_queue *jq;
	uint32_t req_cons, rsp_prod, outstanding;
	unsigned int n = 0, nents;
	void *ctx[2];

	if (!j->hdr || q >= j->hdr->nr_queues)
		return -EINVAL;
	jq = xenbus_journal_queue(j, q);
	nents = j->hdr->nr_ents;
	req_cons = LOAD_ACQ(&jq->req_cons);
	rsp_prod = LOAD_ACQ(&jq->rsp_prod);
	outstanding = req_cons - rsp_prod;
	if (outstanding > nents)
		return -EPROTO;
	for (unsigned int i = 0; i < nents; i++) {
		struct xenbus_journal_ent *e = xenbus_journal_ent(j, q, i);
		uint32_t st = LOAD_ACQ(&e->state);

		if (st == XENBUS_JOURNAL_FREE)
			continue;
		if (st != XENBUS_JOURNAL_TAKEN && st != XENBUS_JOURNAL_RESPONDED) {
			xenbus_journal_ent_free(e);
			continue;
		}
		/* Taken after the last req_cons we recorded: still in the ring, taken again. */
		if ((int32_t)(e->req_idx - req_cons) >= 0 || req_cons - e->req_idx > nents) {
			xenbus_journal_ent_free(e);
			continue;
		}
		/* Its response was published (or is about to be, at rsp_prod): done. */
		if (st == XENBUS_JOURNAL_RESPONDED && (int32_t)(e->rsp_idx - rsp_prod) < 0) {
			xenbus_journal_ent_free(e);
			continue;
		}
		if (e->len > XENBUS_JOURNAL_PAYLOAD)
			return -EPROTO;
		redo[n++] = i;
	}
	if (n != outstanding)
		return -EPROTO;
	ctx[0] = j;
	ctx[1] = &q;
	qsort_r(redo, n, sizeof(*redo), by_req_idx, ctx);
	return (int)n;
}

int xenbus_journal_blob_write(struct xenbus_journal *j, const void *data, size_t len)
{
	struct xenbus_journal_hdr *h = j->hdr;
	uint32_t next;

	if (!h)
		return -EINVAL;
	if (len > XENBUS_JOURNAL_BLOB)
		return -EMSGSIZE;
	/* Only the device thread writes: the other copy is ours until the bump. */
	next = h->blob_gen + 1;
	memcpy(h->blob[next & 1u], data, len);
	h->blob_len[next & 1u] = (uint32_t)len;
	STORE_REL(&h->blob_gen, next);
	return 0;
}

int xenbus_journal_blob_read(const struct xenbus_journal *j, void *out, size_t len)
{
	const struct xenbus_journal_hdr *h = j->hdr;
	uint32_t gen, n;

	if (!h || j->size < sizeof(*h))
		return -EINVAL;
	gen = LOAD_ACQ(&h->blob_gen);
	if (gen == 0)
		return 0;
	n = h->blob_len[gen & 1u];
	if (n > XENBUS_JOURNAL_BLOB)
		return -EPROTO;
	if (n > len)
		n = (uint32_t)len;
	memcpy(out, h->blob[gen & 1u], n);
	return (int)n;
}

void xenbus_journal_stats_write(struct xenbus_journal *j, const void *stats, size_t len)
{
	struct xenbus_journal_hdr *h = j->hdr;
	uint32_t seq;

	if (!h)
		return;
	if (len > XENBUS_JOURNAL_STATS)
		len = XENBUS_JOURNAL_STATS;
	seq = h->stats_seq;
	STORE_REL(&h->stats_seq, seq | 1u);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(h->stats, stats, len);
	h->stats_len = (uint32_t)len;
	STORE_REL(&h->stats_seq, (seq | 1u) + 1);
}

int xenbus_journal_stats_read(const struct xenbus_journal *j, void *out, size_t len)
{
	const struct xenbus_journal_hdr *h = j->hdr;

	if (!h || j->size < sizeof(*h) || h->magic != XENBUS_JOURNAL_MAGIC)
		return 0;
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t s1 = LOAD_ACQ(&h->stats_seq), s2, n;

		if (s1 & 1u)
			continue;
		n = h->stats_len;
		if (n > len)
			n = (uint32_t)len;
		if (n > XENBUS_JOURNAL_STATS)
			n = XENBUS_JOURNAL_STATS;
		memcpy(out, h->stats, n);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = LOAD_ACQ(&h->stats_seq);
		if (s1 == s2)
			return (int)n;
	}
	return -EAGAIN;
}
