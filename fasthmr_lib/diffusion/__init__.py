"""The one-step latent diffusion decoder (paper §3.3): VAE, denoiser, schedule, decoder, training, cost."""
