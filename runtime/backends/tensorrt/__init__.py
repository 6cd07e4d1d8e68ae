"""TensorRT runner, engine cache and builder, engine identity, DLA, the CUDA it needs and the probe of what is installed."""
