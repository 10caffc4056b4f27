"""Audio in: decoding (libsndfile, FFmpeg), resampling, windows of long audio, and the feature extractors
(Kaldi fbank for AST, log-mel for TVLT) that own their framing, windowing and normalisation."""
