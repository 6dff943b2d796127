"""The classic program's kernels (OptimizedConvNew, tt-metal's conv2d factory): the im2col activation
readers, the weights reader with its multicast, and conv_bmm_tilize's compute."""
