"""mediaformers: fast VideoMAE, ViViT, AST, TVLT and AltCLIP in PyTorch."""
__version__ = "0.1.0"
