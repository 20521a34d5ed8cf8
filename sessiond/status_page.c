/* status_page.c - the status page (see status_page.h). */
#define _GNU_SOURCE
#include "status_page.h"
#include "control.h"
#include "metrics_report.h"

#include <string.h>

#define CHART_W 600
#define CHART_H 120

/* The value a chart shows for sample i (i >= 1: rates need the one before). */
typedef double (*series_fn)(size_t i, int which);

static double sessions_at(size_t i, int which)
{
	return metrics_ring_at(i)->sessions[which];
}

static double stanzas_at(size_t i, int which)
{
	const struct metrics_sample *a = metrics_ring_at(i - 1), *b = metrics_ring_at(i);
	double dt = b->at - a->at;
	return dt > 0 ? (double)(b->stanzas[which] - a->stanzas[which]) / dt : 0;
}

static double requests_at(size_t i, int which)
{
	const struct metrics_sample *a = metrics_ring_at(i - 1), *b = metrics_ring_at(i);
	double dt = b->at - a->at;
	uint64_t d = which ? b->http_error - a->http_error : b->http_ok - a->http_ok;
	return dt > 0 ? (double)d / dt : 0;
}

/* A line chart of two series over the ring: SVG attributes only (the CSP
 * allows no style), the largest value written beside the axis. */
static int chart(struct buf *o, const char *title, series_fn f, size_t from, const char *const names[2],
                 const char *const colours[2])
{
	size_t n = metrics_ring_len();
	double max = 1;
	for (size_t i = from; i < n; i++)
		for (int w = 0; w < 2; w++)
			if (f(i, w) > max)
				max = f(i, w);
	int rc = buf_printf(o, "<h2>%s</h2>\n<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
	                       "viewBox='0 0 %d %d'><rect width='%d' height='%d' fill='#f8f8f8' stroke='#ccc'/>"
	                       "<text x='4' y='12' font-size='10' fill='#555'>%.1f</text>",
	                    title, CHART_W, CHART_H + 20, CHART_W, CHART_H + 20, CHART_W, CHART_H, max);
	for (int w = 0; w < 2 && rc == 0; w++) {
		rc = buf_printf(o, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", colours[w]);
		for (size_t i = from; i < n && rc == 0; i++) {
			double x = (double)(METRICS_RING - (n - i)) * CHART_W / (METRICS_RING - 1);
			rc = buf_printf(o, "%.1f,%.1f ", x, CHART_H - f(i, w) * (CHART_H - 16) / max);
		}
		rc = rc ? rc : buf_printf(o, "'/><text x='%d' y='%d' font-size='11' fill='%s'>%s</text>", 10 + w * 150,
		                          CHART_H + 15, colours[w], names[w]);
	}
	return rc ? rc : buf_puts(o, "</svg>\n");
}

int status_page_html(struct buf *o)
{
	static const char *const transports[2] = { "BOSH sessions", "WebSocket sessions" };
	static const char *const directions[2] = { "to the server /s", "to clients /s" };
	static const char *const outcomes[2] = { "200 /s", "errors (4xx, 5xx) /s" };
	static const char *const colours[2] = { "#1f5fbf", "#c0392b" };
	int rc = buf_puts(o, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
	                     "<meta http-equiv='refresh' content='10'><title>sessiond status</title></head>"
	                     "<body>\n<h1>sessiond status</h1>\n<pre>");
	/* The figures are ours and contain no markup; the restart outcome may
	 * name a path, so the whole block is escaped all the same. */
	struct buf text = { 0 };
	rc = rc ? rc : control_status(&text, 0);
	rc = rc ? rc : buf_xml_escaped(o, text.data ? text.data : "");
	buf_free(&text);
	rc = rc ? rc : buf_printf(o, "</pre>\n<p>The last hour, one point every %d s.</p>\n",
	                          METRICS_SAMPLE_MS / 1000);
	rc = rc ? rc : chart(o, "Sessions", sessions_at, 0, transports, colours);
	if (metrics_ring_len() > 1) {
		rc = rc ? rc : chart(o, "Stanzas per second", stanzas_at, 1, directions, colours);
		rc = rc ? rc : chart(o, "HTTP answers per second", requests_at, 1, outcomes, colours);
	}
	rc = rc ? rc : buf_puts(o, "<p>Prometheus: the metrics page beside this one.</p>\n</body></html>\n");
	return rc ? -1 : 0;
}
