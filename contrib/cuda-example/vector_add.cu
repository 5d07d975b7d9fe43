// vector_add: add two vectors on the GPU and check the sum on the CPU.
//
// Exit status: 0 when every element is right, 1 on a CUDA error or a wrong
// element, 2 when there is no CUDA device (one line on stderr says why).
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(call)                                                                    \
	do {                                                                           \
		cudaError_t e_ = (call);                                               \
		if (e_ != cudaSuccess) {                                               \
			fprintf(stderr, "vector_add: %s: %s\n", #call, cudaGetErrorString(e_)); \
			return 1;                                                      \
		}                                                                      \
	} while (0)

__global__ void add(const float *a, const float *b, float *c, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		c[i] = a[i] + b[i];
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1 << 24;
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count == 0) {
		fprintf(stderr, "vector_add: no CUDA device: %s\n",
			e != cudaSuccess ? cudaGetErrorString(e) : "0 devices found");
		return 2;
	}
	cudaDeviceProp prop;
	CHECK(cudaGetDeviceProperties(&prop, 0));

	size_t bytes = (size_t)n * sizeof(float);
	float *a = (float *)malloc(bytes), *b = (float *)malloc(bytes), *c = (float *)malloc(bytes);
	if (!a || !b || !c) {
		fprintf(stderr, "vector_add: out of host memory for %d elements\n", n);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 2.0f * (float)i;
	}
	float *da, *db, *dc;
	CHECK(cudaMalloc(&da, bytes));
	CHECK(cudaMalloc(&db, bytes));
	CHECK(cudaMalloc(&dc, bytes));
	CHECK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));

	cudaEvent_t t0, t1;
	CHECK(cudaEventCreate(&t0));
	CHECK(cudaEventCreate(&t1));
	CHECK(cudaEventRecord(t0));
	add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
	CHECK(cudaGetLastError());
	CHECK(cudaEventRecord(t1));
	CHECK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));
	float ms = 0;
	CHECK(cudaEventElapsedTime(&ms, t0, t1));

	for (int i = 0; i < n; i++) {
		if (c[i] != 3.0f * (float)i) {
			fprintf(stderr, "vector_add: element %d is %g, expected %g\n", i, c[i],
				3.0f * (float)i);
			return 1;
		}
	}
	printf("vector_add: %d elements OK on %s (kernel %.3f ms)\n", n, prop.name, ms);
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	free(a);
	free(b);
	free(c);
	return 0;
}
