"""Synthetic training data: text corpus, TTS voice bank and the meeting simulator."""
