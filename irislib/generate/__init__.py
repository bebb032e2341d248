"""Generation: hybrid sampling (a VAE draft noised to a strength and denoised by the UNet), the sampler that loads
a pair once (run folders or manifest names), and synthetic identity datasets (N eyes x M captures)."""
