/* xmlesc.h - the escapes for text put into an XML attribute value. */
#ifndef BOSH_XMLESC_H
#define BOSH_XMLESC_H

/* The entity that stands for c inside a quoted attribute value, or NULL
 * when c may stand as it is. */
static inline const char *xml_attr_entity(char c)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '\'': return "&apos;";
	case '"': return "&quot;";
	default: return 0;
	}
}

#endif
