"""The shared trainer and the registered fine-tuning methods it runs."""
