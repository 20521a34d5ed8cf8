/* status_page.h - the status page: the figures of `boshctl status` and
 * charts of the last hour (metrics.h's ring), as one HTML document with
 * inline SVG. No script and no style sheet: the answer's
 * Content-Security-Policy (reply.c) allows neither, and the page needs
 * neither; nothing is loaded from anywhere. */
#ifndef BOSH_STATUS_PAGE_H
#define BOSH_STATUS_PAGE_H

#include "buf.h"

/* 0, or -1 on out of memory. */
int status_page_html(struct buf *out);

#endif
