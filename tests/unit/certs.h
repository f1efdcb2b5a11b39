/* certs.h: test certificates made at run time with the OpenSSL API (none are committed). */
#ifndef FULCRUM_TEST_CERTS_H
#define FULCRUM_TEST_CERTS_H

/* Writes a self-signed certificate (PEM) to <cert> and its key to <key>: <type> "ec" (P-256) or
 * "rsa" (2048 bits), common name <cn>, subjectAltName <san> in OpenSSL syntax (e.g.
 * "DNS:a.test,IP:127.0.0.1", or NULL for none), valid for <days> days from now. Returns 0 or -1. */
int test_make_cert(const char *cert, const char *key, const char *type, const char *cn, const char *san, int days);

#endif
