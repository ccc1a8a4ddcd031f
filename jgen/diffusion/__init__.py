"""Class-conditional diffusion models as classifiers (Monte Carlo ELBO)."""
