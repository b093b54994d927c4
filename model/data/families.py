"""Registry of voice families: name -> the ``FAMILY`` object of ``model.data.voices_<name>``, imported lazily.

A family whose module or engine is missing does not break the others: :func:`get_family` raises for that name
only, and :func:`available_families` leaves it out.
"""

from __future__ import annotations

import importlib

from model.data.voices import VoiceFamily

FAMILY_NAMES = ("espeak", "flite", "festival", "kokoro", "pico")
"""Every registered family; each lives in ``model/data/voices_<name>.py``."""


def get_family(name: str) -> VoiceFamily:
    """The family object ``FAMILY`` of ``model.data.voices_<name>``."""
    if name not in FAMILY_NAMES:
        raise KeyError(f"unknown voice family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    module = importlib.import_module(f"model.data.voices_{name}")
    family: VoiceFamily = module.FAMILY
    assert family.name == name, (family.name, name)
    return family


def available_families() -> list[str]:
    """Names of the families whose module imports and whose engine is installed here."""
    out = []
    for name in FAMILY_NAMES:
        try:
            if get_family(name).available():
                out.append(name)
        except Exception:  # noqa: BLE001 - a broken optional family must not break the others
            continue
    return out
