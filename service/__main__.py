"""``sts-server [--host H] [--port P] [--model DIR]``: run the service (other settings: STS_* variables)."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import RANDOM_TINY, Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sts-server", description=__doc__)
    parser.add_argument("--host", help="interface to listen on (STS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (STS_PORT, default 8000)")
    parser.add_argument("--model", help=f"checkpoint directory, or {RANDOM_TINY!r} (STS_MODEL; default: bundled)")
    parser.add_argument("--max-streams", type=int, help="concurrent streams (STS_MAX_STREAMS)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:  # a flag or an STS_* variable out of range: a usage error, not a traceback
        parser.error("; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=2 * settings.max_frame_bytes,  # larger frames get our error message first
    )


if __name__ == "__main__":
    main()
