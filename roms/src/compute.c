/* compute: a CPU-bound workload for the engines' speed (benches/compute.sh),
 * bare metal: SHA-256 (FIPS 180-4) and a sieve of Eratosthenes, integer
 * code only, no interrupts, no devices but the serial port.
 *
 * Its checks are the standard's own: the SHA-256 digests of "abc" and of
 * the 448-bit message "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
 * (FIPS 180-4's examples, NIST CSRC), and pi(100000) = 9592 primes below
 * 100,000. With "rounds=N" on the command line it then does N rounds of
 * work between the lines COMPUTE-START and COMPUTE-END: each round hashes a
 * 64 KiB buffer, writes the digest into the buffer (so the rounds chain)
 * and sieves the primes below 100,000 again. COMPUTE-END prints the last
 * digest, so that engines (and QEMU) can be compared on the same work. */
#include "multiboot.h"

const char test_name[] = "compute";

struct sha256 {
	u32 h[8];
	u8 block[64];
	u32 used;
	u32 bytes_lo, bytes_hi;
};

static const u32 K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static u32 rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(struct sha256 *s)
{
	static const u32 h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	for (int i = 0; i < 8; i++)
		s->h[i] = h0[i];
	s->used = 0;
	s->bytes_lo = s->bytes_hi = 0;
}

static void sha256_block(struct sha256 *s, const u8 *p)
{
	u32 w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		u32 s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
		u32 s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	u32 a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	u32 e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		u32 t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		u32 t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(struct sha256 *s, const u8 *p, u32 n)
{
	u32 lo = s->bytes_lo;
	s->bytes_lo += n;
	s->bytes_hi += s->bytes_lo < lo;
	while (n) {
		s->block[s->used++] = *p++;
		n--;
		if (s->used == 64) {
			sha256_block(s, s->block);
			s->used = 0;
		}
	}
}

/* The digest as eight big-endian words. */
static void sha256_final(struct sha256 *s, u32 out[8])
{
	u32 bits_hi = s->bytes_hi << 3 | s->bytes_lo >> 29, bits_lo = s->bytes_lo << 3;
	u8 pad = 0x80;
	sha256_update(s, &pad, 1);
	pad = 0;
	while (s->used != 56)
		sha256_update(s, &pad, 1);
	u8 len[8];
	for (int i = 0; i < 4; i++) {
		len[i] = (u8)(bits_hi >> (24 - 8 * i));
		len[4 + i] = (u8)(bits_lo >> (24 - 8 * i));
	}
	sha256_update(s, len, 8);
	for (int i = 0; i < 8; i++)
		out[i] = s->h[i];
}

static void sha256(const u8 *p, u32 n, u32 out[8])
{
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_final(&s, out);
}

static int check_digest(const char *name, const char *msg, const u32 want[8])
{
	u32 n = 0, got[8];
	while (msg[n])
		n++;
	sha256((const u8 *)msg, n, got);
	for (int i = 0; i < 8; i++)
		if (got[i] != want[i]) {
			fail(name, "word %d is %08x, expected %08x", i, got[i], want[i]);
			return 0;
		}
	pass(name);
	return 1;
}

#define SIEVE_N 100000
static u8 composite[SIEVE_N];

static u32 primes_below(u32 n)
{
	for (u32 i = 0; i < n; i++)
		composite[i] = 0;
	u32 count = 0;
	for (u32 i = 2; i < n; i++) {
		if (composite[i])
			continue;
		count++;
		for (u32 j = i * 2; j < n; j += i)
			composite[j] = 1;
	}
	return count;
}

#define BUF_LEN 65536
static u8 buf[BUF_LEN];

/* The value of "rounds=N" on the command line, 0 without one. */
static u32 rounds_arg(const char *cmd)
{
	for (; cmd && *cmd; cmd++) {
		const char *key = "rounds=";
		const char *c = cmd;
		while (*key && *c == *key)
			key++, c++;
		if (*key)
			continue;
		u32 v = 0;
		while (*c >= '0' && *c <= '9')
			v = v * 10 + (u32)(*c++ - '0');
		return v;
	}
	return 0;
}

void test_main(void)
{
	static const u32 abc[8] = {
		0xba7816bf, 0x8f01cfea, 0x414140de, 0x5dae2223,
		0xb00361a3, 0x96177a9c, 0xb410ff61, 0xf20015ad,
	};
	static const u32 two_blocks[8] = {
		0x248d6a61, 0xd20638b8, 0xe5c02693, 0x0c3e6039,
		0xa33ce459, 0x64ff2167, 0xf6ecedd4, 0x19db06c1,
	};
	check_digest("sha256-abc", "abc", abc);
	check_digest("sha256-448-bit",
		     "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", two_blocks);
	check_eq("primes-below-100000", primes_below(SIEVE_N), 9592);

	struct mb_info *mbi = (struct mb_info *)mb_info;
	u32 rounds = rounds_arg((mbi->flags & MBI_CMDLINE) ? (const char *)mbi->cmdline : "");
	if (rounds) {
		for (u32 i = 0; i < BUF_LEN; i++)
			buf[i] = (u8)(i * 131 + (i >> 8));
		u32 digest[8] = { 0 };
		u32 primes = 0;
		printf("COMPUTE-START rounds=%u\n", rounds);
		for (u32 r = 0; r < rounds; r++) {
			sha256(buf, BUF_LEN, digest);
			for (int i = 0; i < 8; i++)
				((u32 *)buf)[(r * 8 + i) % (BUF_LEN / 4)] ^= digest[i];
			primes += primes_below(SIEVE_N);
		}
		printf("COMPUTE-END digest=");
		for (int i = 0; i < 8; i++)
			printf("%08x", digest[i]);
		printf(" primes=%u\n", primes);
		check_eq("rounds-primes", primes, 9592 * rounds);
	}
	finish();
}
