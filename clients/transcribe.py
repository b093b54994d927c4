"""``sts-transcribe AUDIO [--format F] [--model DIR] [--server URL]``: print the transcript of an audio file.

Locally (default) the model is loaded in this process (``--model DIR``, the bundled model by default, or
``random-tiny`` for a random test model) and the file is decoded through the streaming API, chunk by chunk,
by the same code as the service's REST endpoint. With ``--server URL`` the file is posted to a running
service's ``POST /v1/transcriptions``. The transcript goes to standard output in the chosen format
(DESIGN sections 4 and 6); errors go to standard error with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys

from service.config import RANDOM_TINY
from service.schemas import OUTPUT_FORMATS

EXIT_FAILED = 1  # the file could not be transcribed (missing, not audio, damaged, server error)
EXIT_MODEL = 3  # the model could not be loaded / the server could not be reached


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sts-transcribe", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("audio", metavar="AUDIO", help="audio file (WAV, FLAC, OGG, MP3, ...; any rate; downmixed)")
    p.add_argument("--format", "-f", choices=OUTPUT_FORMATS, default="json", help="output format (default json)")
    p.add_argument(
        "--model",
        metavar="DIR",
        help=f"checkpoint directory, or {RANDOM_TINY!r} (default: the bundled model; not with --server)",
    )
    p.add_argument("--server", metavar="URL", help="transcribe on a running service, e.g. http://127.0.0.1:8000")
    p.add_argument("--max-speakers", type=int, metavar="N", help="hint: at most N speakers in the file (1-64)")
    p.add_argument("--token", default=os.environ.get("STS_TOKEN"),
                   help="API key for --server (default: $STS_TOKEN)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="with --server: seconds to wait for the transcript (default 600)")  # fmt: skip
    p.add_argument("--output", "-o", metavar="FILE", help="write the transcript here instead of standard output")
    return p


def _fail(message: str, status: int = EXIT_FAILED) -> int:
    print(f"sts-transcribe: error: {message}", file=sys.stderr)
    return status


def _remote(args: argparse.Namespace) -> tuple[str | None, int]:
    from clients.sdk import ApiRequestError, BatchClient, StsError

    if not os.path.isfile(args.audio):
        return None, _fail(f"no such file: {args.audio}")
    try:
        client = BatchClient(args.server, token=args.token, timeout=args.timeout)
        return client.transcribe_raw(args.audio, args.format, max_speakers=args.max_speakers), 0
    except ApiRequestError as e:
        return None, _fail(f"{args.audio}: server answered {e.status} {e.code}: {e.message}")
    except (StsError, ValueError) as e:
        return None, _fail(str(e), EXIT_MODEL)


def _local(args: argparse.Namespace) -> tuple[str | None, int]:
    from clients.local import LocalError, load_recognizer, session_name, transcribe_path
    from service.formats import render

    if not os.path.isfile(args.audio):  # before loading the model, which takes a while
        return None, _fail(f"no such file: {args.audio}")
    try:
        recognizer = load_recognizer(args.model)
    except FileNotFoundError as e:
        hint = " (pass --model DIR, or --server URL)" if args.model is None else ""
        return None, _fail(f"cannot load the model: {e}{hint}", EXIT_MODEL)
    except Exception as e:  # a damaged or incompatible checkpoint
        return None, _fail(f"cannot load the model from {args.model or 'the bundle'}: {e}", EXIT_MODEL)
    try:
        transcript = transcribe_path(args.audio, recognizer, max_speakers=args.max_speakers)
    except LocalError as e:
        return None, _fail(f"{args.audio}: {e.message} ({e.code})")
    return render(transcript, args.format, session_name(args.audio)), 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_speakers is not None and not 1 <= args.max_speakers <= 64:
        return _fail("--max-speakers must be from 1 to 64", 2)
    if not args.timeout > 0:
        return _fail("--timeout must be a positive number of seconds", 2)
    if args.server and args.model:
        return _fail("--model and --server exclude each other (the server has its own model)", 2)
    text, status = _remote(args) if args.server else _local(args)
    if text is None:
        return status
    if not text.endswith("\n"):
        text += "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
