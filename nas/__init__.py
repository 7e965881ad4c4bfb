"""nas: hardware-aware neural architecture search for mobile vision transformers."""
