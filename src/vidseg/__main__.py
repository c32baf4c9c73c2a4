"""``python -m vidseg`` (used by ``torchrun -m vidseg train ...``)."""

from vidseg.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
