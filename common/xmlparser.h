/* xmlparser.h - every expat parser we create, made the same way.
 *
 * expat 2.6 defers parsing small feeds until more bytes arrive ("reparse
 * deferral"), which would hold a complete stanza back while the server
 * waits for our answer. Distributions backport it without changing the
 * version macros (Debian 12's 2.5.0-1+deb12u5 has it and still says 2.5),
 * so the build probes whether the function links (build/probed.h) and
 * never looks at versions. Our own byte limits bound every parse instead. */
#ifndef BOSH_XMLPARSER_H
#define BOSH_XMLPARSER_H

#include "probed.h"

#include <expat.h>

/* Call after creating a parser and after every XML_ParserReset(), which
 * puts the default back. */
static inline void xml_parser_no_deferral(XML_Parser p)
{
#if HAVE_XML_SETREPARSEDEFERRALENABLED
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#else
	(void)p; /* this expat has no deferral to switch off */
#endif
}

/* A namespace-aware parser that takes only UTF-8 and never defers. */
static inline XML_Parser xml_parser_new(XML_Char ns_sep)
{
	XML_Parser p = XML_ParserCreateNS("UTF-8", ns_sep);
	if (p)
		xml_parser_no_deferral(p);
	return p;
}

#endif
