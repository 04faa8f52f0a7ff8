"""The GPU strip: one gauge block per GPU, sampled by a thread worker."""
