// CUDA solution of the "vecadd" problem (sample): the vectors are made, added
// and reduced on the GPU; only the checksum comes back.
//
// Exit status 2 with "vecadd: no CUDA device: ..." on stderr when the job has
// no usable GPU, 1 on any other CUDA error (named on stderr).
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cuda_runtime.h>

#define CHECK(call)                                                                     \
	do {                                                                            \
		cudaError_t e_ = (call);                                                \
		if (e_ != cudaSuccess) {                                                \
			fprintf(stderr, "vecadd: %s: %s\n", #call, cudaGetErrorString(e_)); \
			return 1;                                                       \
		}                                                                       \
	} while (0)

__device__ uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

// Each thread adds a strided share of the elements and adds its partial
// checksum to *sum once (unsigned overflow wraps, as modulo 2^64 wants).
__global__ void vecadd(uint64_t n, uint64_t seed, unsigned long long *sum)
{
	uint64_t part = 0;
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
	     i += (uint64_t)gridDim.x * blockDim.x) {
		uint32_t a = (uint32_t)splitmix64(seed + i);
		uint32_t b = (uint32_t)(splitmix64(seed + n + i) >> 32);
		part += ((uint64_t)a + b) ^ i;
	}
	atomicAdd(sum, (unsigned long long)part);
}

int main()
{
	uint64_t n, seed;
	if (scanf("%" SCNu64 " %" SCNu64, &n, &seed) != 2) {
		fprintf(stderr, "vecadd: expected 'N SEED' on standard input\n");
		return 1;
	}
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count == 0) {
		fprintf(stderr, "vecadd: no CUDA device: %s\n",
			e != cudaSuccess ? cudaGetErrorString(e) : "0 devices found");
		return 2;
	}
	unsigned long long *dsum, sum = 0;
	CHECK(cudaMalloc(&dsum, sizeof(sum)));
	CHECK(cudaMemset(dsum, 0, sizeof(sum)));
	vecadd<<<1024, 256>>>(n, seed, dsum);
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(&sum, dsum, sizeof(sum), cudaMemcpyDeviceToHost));
	CHECK(cudaFree(dsum));
	printf("%llu\n", sum);
	return 0;
}
