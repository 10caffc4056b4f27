"""Images and frames in: the torch transforms (resize, crop, rescale, normalise) and CLIP's image processor."""
