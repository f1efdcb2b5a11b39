/* certs.c: see certs.h. */
#include "certs.h"

#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int test_make_cert(const char *cert, const char *key, const char *type, const char *cn, const char *san, int days)
{
    EVP_PKEY *pk = type[0] == 'r' ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int rc = -1;
    if (pk == NULL || x == NULL) goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (san != NULL) {
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        if (ext == NULL) goto out;
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, pk, EVP_sha256()) <= 0) goto out;
    FILE *f = fopen(cert, "w");
    if (f == NULL) goto out;
    int ok = PEM_write_X509(f, x) == 1;
    fclose(f);
    if (!ok || (f = fopen(key, "w")) == NULL) goto out;
    ok = PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
    fclose(f);
    rc = ok ? 0 : -1;
out:
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}
