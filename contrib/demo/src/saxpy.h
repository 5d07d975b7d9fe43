#ifndef SAXPY_H
#define SAXPY_H
#include <stddef.h>
/* y = a * x + y, the CPU reference for the CUDA example to come. */
void saxpy(size_t n, float a, const float *x, float *y);
#endif
