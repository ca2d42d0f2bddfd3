"""Head3D training code: cameras, rendering, networks, data, losses and the training loop."""
