/* Sequential reference of the "vecadd" problem (see statement.md). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int main(void)
{
	uint64_t n, seed;
	if (scanf("%" SCNu64 " %" SCNu64, &n, &seed) != 2) {
		fprintf(stderr, "vecadd: expected 'N SEED' on standard input\n");
		return 1;
	}
	uint32_t *a = malloc(n * sizeof(*a)), *b = malloc(n * sizeof(*b));
	uint64_t *c = malloc(n * sizeof(*c));
	if (!a || !b || !c) {
		fprintf(stderr, "vecadd: out of memory for %" PRIu64 " elements\n", n);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		a[i] = (uint32_t)splitmix64(seed + i);
		b[i] = (uint32_t)(splitmix64(seed + n + i) >> 32);
	}
	for (uint64_t i = 0; i < n; i++)
		c[i] = (uint64_t)a[i] + b[i];
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++)
		sum += c[i] ^ i;
	printf("%" PRIu64 "\n", sum);
	free(a);
	free(b);
	free(c);
	return 0;
}
