/* config-keys - prints every key of the configuration, as the parser knows
 * it, one per line: NAME TYPE DEFAULT MIN MAX RELOAD ALIAS_OF, tab-separated,
 * an empty field for none (no default, no bound, not an alias). tools/mkconfman.py makes bosh.conf(5) from it, so the page
 * cannot drift from the parser.
 *
 * It includes config.c itself rather than linking it: the key table there is
 * static, and this must read that very table, not a copy. The keys parsed
 * outside the table (backend.DOMAIN, header, xmpp_keepalive) are listed
 * after it, each first fed to the parser to prove it still takes them. */
#include "../common/config.c"

static void print_default(const struct key *k, const struct config *c)
{
	const char *field = (const char *)c + k->offset;
	switch (k->kind) {
	case K_PATH:
	case K_STRING: printf("%s", field); return;
	case K_NUMBER: printf("%ld", *(const long *)(const void *)field); return;
	case K_LEVEL: printf("%s", log_level_name((enum log_level) * (const int *)(const void *)field)); return;
	}
}

static const char *kind_name(enum key_kind kind)
{
	switch (kind) {
	case K_PATH: return "path";
	case K_STRING: return "string";
	case K_NUMBER: return "number";
	case K_LEVEL: return "level";
	}
	return "?";
}

/* A key set_key() handles itself: accepted with this sample value? */
static int special(struct config *c, const char *name, const char *sample, const char *type,
                   const char *dflt, int reload)
{
	const char *why = NULL;
	if (set_key(c, "", name, sample, &why) < 0) {
		fprintf(stderr, "config-keys: the parser refuses %s = %s: %s\n", name, sample, why);
		return -1;
	}
	const char *shown = strncmp(name, "backend.", 8) == 0 ? "backend.DOMAIN" : name;
	printf("%s\t%s\t%s\t\t\t%d\t\n", shown, type, dflt, reload);
	return 0;
}

int main(void)
{
	static struct config c; /* large: not on the stack */
	config_defaults(&c);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct key *k = &keys[i];
		const char *alias = "";
		for (size_t j = 0; j < i; j++)
			if (keys[j].offset == k->offset)
				alias = keys[j].name;
		printf("%s\t%s\t", k->name, kind_name(k->kind));
		print_default(k, &c);
		if (k->kind == K_NUMBER)
			printf("\t%ld\t%ld", k->min, k->max);
		else
			printf("\t\t");
		printf("\t%d\t%s\n", k->reload, alias);
	}
	char keepalive[64];
	snprintf(keepalive, sizeof keepalive, "%ld %ld %ld", c.xmpp_keepalive_idle, c.xmpp_keepalive_interval,
	         c.xmpp_keepalive_count);
	/* config_reload(): backends and headers are applied on SIGHUP, keepalive is not */
	if (special(&c, "backend.example.org", "127.0.0.1:5222", "backend", "", 1) < 0 ||
	    special(&c, "header", "X-Test: 1", "header", "", 1) < 0 ||
	    special(&c, "xmpp_keepalive", keepalive, "keepalive", keepalive, 0) < 0)
		return 1;
	return fflush(stdout) == 0 ? 0 : 1;
}
