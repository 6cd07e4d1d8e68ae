"""The model side: the bundle manifest, device profiles, pixel <-> tensor ops and the Enhancer, native ops."""
