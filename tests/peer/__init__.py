"""transformers' own tests run against mediaformers: see run.py."""
