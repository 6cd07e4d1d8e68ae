"""Trust checks around the model: imaging region, input domain, tone, fidelity, PHI masking, temporal smoothing."""
