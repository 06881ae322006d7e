/* Test and timing harness for an exported model (tests/test_export.py, benchmarks/deploy.py).
 *
 * usage: export_harness INPUTS OUTPUTS [REPEATS]
 * Reads n samples of GRAIA_MODEL_INPUTS bytes from INPUTS; writes to OUTPUTS, per sample,
 * graia_model_predict's GRAIA_MODEL_OUTPUTS bytes, then one byte per sample of
 * graia_model_classify. Prints "self_test F" (failing golden pairs) and, when REPEATS > 0, the
 * nanoseconds per sample of graia_model_predict over REPEATS passes of the data. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "graia_model.h"

static long read_all(const char *path, unsigned char **data)
{
    FILE *f = fopen(path, "rb");
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        return -1;
    }
    *data = malloc(size > 0 ? (size_t)size : 1u);
    if (*data == NULL || fread(*data, 1, (size_t)size, f) != (size_t)size) {
        return -1;
    }
    fclose(f);
    return size;
}

int main(int argc, char **argv)
{
    unsigned char *inputs, *outputs;
    long size, n, s, repeats = argc > 3 ? atol(argv[3]) : 0, r;
    FILE *out;
    if (argc < 3 || (size = read_all(argv[1], &inputs)) < 0 || size % GRAIA_MODEL_INPUTS != 0) {
        fprintf(stderr, "usage: %s INPUTS OUTPUTS [REPEATS] (INPUTS: n * %d bytes)\n", argv[0],
                GRAIA_MODEL_INPUTS);
        return 2;
    }
    n = size / GRAIA_MODEL_INPUTS;
    outputs = malloc((size_t)(n * (GRAIA_MODEL_OUTPUTS + 1)) + 1u);
    if (outputs == NULL) {
        return 2;
    }
    for (s = 0; s < n; s++) {
        graia_model_predict(inputs + s * GRAIA_MODEL_INPUTS, outputs + s * GRAIA_MODEL_OUTPUTS);
        outputs[n * GRAIA_MODEL_OUTPUTS + s] =
            (unsigned char)graia_model_classify(inputs + s * GRAIA_MODEL_INPUTS);
    }
    out = fopen(argv[2], "wb");
    if (out == NULL || fwrite(outputs, 1, (size_t)(n * (GRAIA_MODEL_OUTPUTS + 1)), out)
                           != (size_t)(n * (GRAIA_MODEL_OUTPUTS + 1))) {
        return 2;
    }
    fclose(out);
    printf("self_test %d\n", graia_model_self_test());
    if (repeats > 0 && n > 0) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (r = 0; r < repeats; r++) {
            for (s = 0; s < n; s++) {
                graia_model_predict(inputs + s * GRAIA_MODEL_INPUTS, outputs + s * GRAIA_MODEL_OUTPUTS);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("ns_per_sample %.1f\n",
               ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                   ((double)repeats * (double)n));
    }
    return 0;
}
