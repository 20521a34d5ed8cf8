/* sesssnap.h - the sessions in a graceful restart's snapshot (snapshot.h).
 *
 * The snapshot lists the sids lost in earlier runs and those drained
 * elsewhere, then one record per session: [sid][its descriptors][its
 * transport][what the transport wrote]. A session that cannot be written whole, or read back,
 * is lost alone: its descriptors are closed and its next request is told
 * remote-connection-failed.
 */
#ifndef BOSH_SESSSNAP_H
#define BOSH_SESSSNAP_H

#include "sesstable.h"

/* The most descriptors one record may name; part of the snapshot's format.
 * A transport checks that its sessions fit (bosh_int.h: held requests and
 * those ahead of their turn, one XMPP connection per stream). */
#define SESS_FDS_MAX 26

/* Who reads the records back: a record names its transport by its place
 * in this list, so the list's order is part of the snapshot's format
 * (SNAP_VERSION). */
void sesssnap_init(const struct sess_ops *const *records, size_t n);

/* Each transport's restart_prepare()/restart_abandoned() (sesstable.h). */
void sessions_restart_prepare(void);
void sessions_restart_abandoned(void);

int sessions_snapshot(struct snap_w *w, sessions_fd_cb keep, void *ctx);
/* Takes the sessions of a snapshot over; returns how many, -1 if it is corrupt. */
long sessions_restore(struct snap_r *r);

#endif
