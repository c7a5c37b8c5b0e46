"""The engine: overlap-tile prediction and the fine-tune loop, with their devices, progress, DDP and pixel forest."""
