"""Separator-transducer-segmenter (STS) model: features, network, loss, search and streaming recognizer."""
