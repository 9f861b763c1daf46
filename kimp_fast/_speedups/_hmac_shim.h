/* HMAC-SHA256/512 and SHA-512 straight on libcrypto's digest primitives, for _signing_c.
 *
 * Why: through hashlib every HMAC costs a context copy (three EVP contexts, with
 * allocations), an update and a finalising copy: ~0.8-1 us on OpenSSL 3. HMAC (RFC 2104)
 * only needs the two key-padded digest states, which are computed once per signer here;
 * signing then copies two small structs and runs the compression function (SHA-NI where
 * the CPU has it): ~0.2-0.3 us. The digests are still OpenSSL's.
 *
 * Built only when setup.py finds the OpenSSL headers and libcrypto (it defines
 * KIMP_FAST_OPENSSL); otherwise KF_HAVE_OPENSSL is 0, these functions are stubs and
 * _signing_c uses hashlib/hmac, with identical results.
 */
#ifndef KIMP_FAST_HMAC_SHIM_H
#define KIMP_FAST_HMAC_SHIM_H

#include <stddef.h>
#include <string.h>

#ifdef KIMP_FAST_OPENSSL
/* SHA256_Init & co. are deprecated in OpenSSL 3 in favour of EVP, whose per-call context
 * handling is exactly the overhead this file exists to avoid. They are still provided. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
#define KF_HAVE_OPENSSL 1

typedef struct {
    int alg; /* 256 or 512; 0 = not initialised */
    union { SHA256_CTX s256; SHA512_CTX s512; } inner, outer;
} kf_hmac;

static int kf_hmac_init(kf_hmac *h, int alg, const unsigned char *key, size_t keylen)
{
    unsigned char block[128], pad[128];
    size_t bs = alg == 512 ? 128 : 64, i;
    int ok = 1;
    memset(block, 0, sizeof block);
    if (keylen > bs) { /* RFC 2104: long keys are hashed first */
        if (alg == 512) ok = SHA512(key, keylen, block) != NULL;
        else ok = SHA256(key, keylen, block) != NULL;
    } else {
        memcpy(block, key, keylen);
    }
    h->alg = alg;
    for (i = 0; i < bs; i++) pad[i] = block[i] ^ 0x36;
    if (alg == 512) ok = ok && SHA512_Init(&h->inner.s512) && SHA512_Update(&h->inner.s512, pad, bs);
    else ok = ok && SHA256_Init(&h->inner.s256) && SHA256_Update(&h->inner.s256, pad, bs);
    for (i = 0; i < bs; i++) pad[i] = block[i] ^ 0x5c;
    if (alg == 512) ok = ok && SHA512_Init(&h->outer.s512) && SHA512_Update(&h->outer.s512, pad, bs);
    else ok = ok && SHA256_Init(&h->outer.s256) && SHA256_Update(&h->outer.s256, pad, bs);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
    if (!ok) {
        OPENSSL_cleanse(h, sizeof *h);
        return 0;
    }
    return 1;
}

/* Writes the MAC to out (32 or 64 bytes); returns its length, 0 on failure. */
static int kf_hmac_sign(const kf_hmac *h, const unsigned char *msg, size_t n, unsigned char *out)
{
    int ok;
    if (h->alg == 512) {
        SHA512_CTX c = h->inner.s512;
        unsigned char inner[64];
        ok = SHA512_Update(&c, msg, n) && SHA512_Final(inner, &c);
        c = h->outer.s512;
        ok = ok && SHA512_Update(&c, inner, 64) && SHA512_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof c);
        return ok ? 64 : 0;
    }
    if (h->alg == 256) {
        SHA256_CTX c = h->inner.s256;
        unsigned char inner[32];
        ok = SHA256_Update(&c, msg, n) && SHA256_Final(inner, &c);
        c = h->outer.s256;
        ok = ok && SHA256_Update(&c, inner, 32) && SHA256_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof c);
        return ok ? 32 : 0;
    }
    return 0;
}

static int kf_sha512(const unsigned char *msg, size_t n, unsigned char *out)
{
    return SHA512(msg, n, out) != NULL;
}

static void kf_hmac_clear(kf_hmac *h) { OPENSSL_cleanse(h, sizeof *h); }

#else /* no OpenSSL at build time: stubs; _signing_c checks KF_HAVE_OPENSSL first */
#define KF_HAVE_OPENSSL 0

typedef struct { int alg; } kf_hmac;

static int kf_hmac_init(kf_hmac *h, int alg, const unsigned char *key, size_t keylen)
{ (void)alg; (void)key; (void)keylen; h->alg = 0; return 0; }
static int kf_hmac_sign(const kf_hmac *h, const unsigned char *msg, size_t n, unsigned char *out)
{ (void)h; (void)msg; (void)n; (void)out; return 0; }
static int kf_sha512(const unsigned char *msg, size_t n, unsigned char *out)
{ (void)msg; (void)n; (void)out; return 0; }
static void kf_hmac_clear(kf_hmac *h) { h->alg = 0; }
#endif

#endif /* KIMP_FAST_HMAC_SHIM_H */
