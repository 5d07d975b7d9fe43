#include <stdio.h>
#include <stdlib.h>

#include "saxpy.h"

int main(void)
{
	enum { N = 1 << 20 };
	float *x = malloc(N * sizeof(*x)), *y = malloc(N * sizeof(*y));
	if (!x || !y)
		return 1;
	for (size_t i = 0; i < N; i++) {
		x[i] = 1.0f;
		y[i] = 2.0f;
	}
	saxpy(N, 3.0f, x, y);
	float got = y[0];
	printf("y[0] = %.1f (expected 5.0)\n", got);
	free(x);
	free(y);
	return got == 5.0f ? 0 : 1;
}
