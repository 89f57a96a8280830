"""Loading models and the parts of them every layer above reads: module roles,
forward hooks, latent directions and teacher-forced log-probabilities."""
