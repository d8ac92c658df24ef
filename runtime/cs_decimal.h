/* cs_decimal: the exchange's decimal strings ("116827.85").
 *
 * Validates the plain form `^[0-9]+(\.[0-9]+)?$` and converts it to the
 * nearest double: exactly like strtod, but without strtod's locale and
 * exponent handling, and fast for the common case of at most 15 significant
 * digits (then the value is an exact integer divided by an exact power of
 * ten, which IEEE division rounds correctly). The string itself is kept
 * unchanged elsewhere (Kafka records carry it exactly). */
#ifndef CS_DECIMAL_H
#define CS_DECIMAL_H

#include <stddef.h>

/* Returns 0 and sets *out, or -1 when the text is not a plain decimal. */
int cs_decimal_parse(const char *s, size_t len, double *out);

#endif
