/* budget.c - one memory budget shared by every session (see budget.h). */
#include "budget.h"
#include "log.h"

static size_t limit, in_use;
static int episode;          /* the soft mark was passed; logged */
static unsigned long refused; /* refusals this episode */

void budget_init(size_t n)
{
	limit = n;
}

size_t budget_in_use(void)
{
	return in_use;
}

static size_t soft_mark(void)
{
	return limit / 4 * 3;
}

static void move(size_t *held, size_t now)
{
	in_use = in_use - *held + now;
	*held = now;
	if (episode && in_use < limit / 2) {
		log_info("memory budget: %zu bytes in use, under half of max_memory again (%lu refused "
		         "meanwhile)", in_use, refused);
		episode = 0;
		refused = 0;
	}
}

static void start_episode(const char *sid)
{
	if (episode)
		return;
	episode = 1;
	log_warn("memory budget: %zu bytes held for clients and XMPP streams, past 3/4 of max_memory "
	         "(%zu): sessions whose clients do not take their stanzas stop being read (first: %s)",
	         in_use, limit, sid ? sid : "-");
}

int budget_try(size_t *held, size_t now, const char *what, const char *sid)
{
	if (limit && now > *held && in_use - *held + now > limit) {
		if (!refused++) {
			episode = 1;
			log_warn("memory budget: max_memory (%zu bytes) reached: %s refused (session %s); "
			         "further refusals are counted, not logged", limit, what, sid ? sid : "-");
		}
		return -1;
	}
	move(held, now);
	return 0;
}

int budget_charge(size_t *held, size_t now, const char *sid)
{
	move(held, now);
	if (!limit || in_use <= soft_mark())
		return 0;
	start_episode(sid);
	return 1;
}
