/* fdpark.h - descriptors that wait outside the descriptor table.
 *
 * A descriptor sent over a Unix socket (SCM_RIGHTS) and then closed stays
 * open in that socket's queue, where it does not count against the open
 * file limit (the kernel bounds what one user has in flight by that same
 * limit, root excepted). fcgi_conn.c keeps the web server's connections
 * that come past its descriptor budget here, in order, instead of in the
 * listen backlog, whose overflow nginx answers with a 502: a burst of
 * thousands of terminates at 9,000 held sessions needs more descriptors
 * at once than the limit leaves.
 *
 * A batch taken back is installed in descriptors the park holds free for
 * it (spares, dups of its own socket, closed just before): the kernel
 * would close those of a batch it has no room for.
 */
#ifndef BOSH_FDPARK_H
#define BOSH_FDPARK_H

#include <stddef.h>

/* Descriptors per message, and spares held. The queue holds messages, not
 * descriptors: about 280 of them in the default send buffer (wmem_max
 * 212992), 8,900 descriptors at 32 a message; fdpark_open() asks for 4 MiB,
 * which net.core.wmem_max caps. */
#define FDPARK_BATCH 32

struct fdpark {
	int in, out;  /* sent into in, taken from out; -1: not open */
	size_t count; /* descriptors waiting */
	int spare[FDPARK_BATCH];
	int nspare;
};

/* Opens the pair (and the spares, as the limit allows). 0, or -1 with errno. */
int fdpark_open(struct fdpark *p);
/* Closes the pair, the spares and every descriptor still waiting. */
void fdpark_close(struct fdpark *p);

/* Parks fds[0..n) (n <= FDPARK_BATCH) and closes them: 0. On -1 (errno:
 * EAGAIN the socket's queue is full, ETOOMANYREFS the user's in-flight
 * limit) nothing is parked and the descriptors are still the caller's. */
int fdpark_put(struct fdpark *p, const int *fds, int n);

/* Takes the oldest batch into fds (room for FDPARK_BATCH): how many, 0 if
 * none waits, -1 on error (errno; EMFILE: not enough spares to take a
 * batch safely, nothing taken). */
int fdpark_take(struct fdpark *p, int *fds);

/* After a graceful restart: the pair and count the predecessor had. */
void fdpark_adopt(struct fdpark *p, int in, int out, size_t count);

#endif
