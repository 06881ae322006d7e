/* Harness of tests/test_export.py for a model with a preprocessing layer: reads doubles, n *
 * GRAIA_MODEL_INPUTS, from argv[1]; writes per sample graia_model_preprocess's u8 inputs, then
 * graia_model_predict's outputs, to argv[2]. */
#include <stdio.h>
#include <stdlib.h>
#include "graia_model.h"
int main(int argc, char **argv)
{
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    double features[GRAIA_MODEL_INPUTS];
    uint8_t input[GRAIA_MODEL_INPUTS], output[GRAIA_MODEL_OUTPUTS];
    (void)argc;
    while (fread(features, sizeof(double), GRAIA_MODEL_INPUTS, in) == GRAIA_MODEL_INPUTS) {
        graia_model_preprocess(features, input);
        graia_model_predict(input, output);
        fwrite(input, 1, GRAIA_MODEL_INPUTS, out);
        fwrite(output, 1, GRAIA_MODEL_OUTPUTS, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
