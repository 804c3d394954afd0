"""Data: safe decoding and quarantine, the image store, the manifest, the demo generator, splits."""
