# The libFuzzer harnesses: tests/fuzz/fuzz_<name>.cpp, seeds in tests/fuzz/corpus/<name>/.
set(DIFFUSE_FUZZERS
    safetensors npy idx idx_gz image image_folder unet_config unet_pretrained scheduler_config pipeline
    pytorch_bin checkpoint)
