/* OpenMP solution of the "sum" problem (sample): sum of splitmix64(seed + i). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

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
		fprintf(stderr, "sum: expected 'N SEED' on standard input\n");
		return 1;
	}
	uint64_t s = 0;
#pragma omp parallel for reduction(+ : s)
	for (uint64_t i = 0; i < n; i++)
		s += splitmix64(seed + i);
	printf("%" PRIu64 "\n", s);
	return 0;
}
