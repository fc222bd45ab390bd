"""Image-level science: PSF models, image subtraction (ZOGY), detection and measurement, cutouts."""
